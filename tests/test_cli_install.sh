#!/usr/bin/env bash
# test_cli_install.sh: the installed library, as another program sees it. `make install` of this build folder
# (BUILD, set by `make test`; else derived from HESSIAN_BIN) into a temporary PREFIX, then:
#   the files and symlinks (hessian.h, libhessian.so.X.Y.Z -> .so.X -> .so, libhessian.a, bin/hessian,
#   lib/pkgconfig/hessian.pc) and pkg-config's version = include/hessian.h's HS_VERSION_*;
#   examples/hvp_builtin.c and examples/lanczos_onnx.c built with pkg-config alone, against the shared library
#   (run with LD_LIBRARY_PATH; libhessian.so.0 must resolve to the installed one and OpenBLAS to its OpenMP build
#   through the library's rpath), against libhessian.a with --static (-l:libhessian.a, system libraries shared)
#   and fully static (cc -static, when the toolchain has libgfortran.a): hvp_builtin's own check of Hv against
#   differences of gradients passes, and lanczos_onnx's 3 largest eigenvalues on tests/onnx/order.onnx with tiny
#   .npy files (written here with perl) equal `hessian exact`'s to its 6 printed digits (1e-5 relative);
#   exports: `nm -D --defined-only libhessian.so` lists exactly the HS_API functions of include/hessian.h, plus
#   the linker's own _init, _fini, _edata, _end, __bss_start when present; the installed libhessian.a defines
#   no global symbol but hs_ names (nothing internal can clash with a program's symbols);
#   DESTDIR: a staged install writes under DESTDIR alone and hessian.pc names PREFIX;
#   `make uninstall` leaves no file (directories may stay).
# Prints "test_cli_install: N passed, M failed".
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/cli_harness.sh
if [[ -n ${BUILD:-} ]]; then build=$BUILD
elif [[ $bin == bin/hessian ]]; then build=build
else build=$(dirname "$(dirname "$bin")"); fi
make=${MAKE:-make}
cc=${CC:-cc}
p=$tmp/prefix
export PKG_CONFIG_PATH=$p/lib/pkgconfig
version=$(sed -nE 's/^#define HS_VERSION_(MAJOR|MINOR|PATCH) +([0-9]+).*/\2/p' include/hessian.h | paste -sd.)
major=${version%%.*}

# install
expect 0 "" "$make" --no-print-directory install BUILD="$build" PREFIX="$p"
for f in include/hessian.h lib/libhessian.a "lib/libhessian.so.$version" bin/hessian lib/pkgconfig/hessian.pc; do
    [[ -f $p/$f && ! -L $p/$f ]] && ok || bad "not installed: $p/$f"
done
[[ $(readlink "$p/lib/libhessian.so.$major") == "libhessian.so.$version" ]] && ok || bad "libhessian.so.$major link"
[[ $(readlink "$p/lib/libhessian.so") == "libhessian.so.$major" ]] && ok || bad "libhessian.so link"
expect 0 "soname.*libhessian\.so\.$major\]" readelf -d "$p/lib/libhessian.so.$version"
expect 0 "^$version\$" pkg-config --modversion hessian
expect 0 "hessian $version" "$p/bin/hessian" --version

# npy FILE DESCR SHAPE PACK VALUES...: a NumPy .npy file (version 1.0, C order).
npy() {
    perl -e 'my ($path, $descr, $shape, $fmt, @v) = @ARGV;
        my $h = "{\x27descr\x27: \x27$descr\x27, \x27fortran_order\x27: False, \x27shape\x27: $shape, }";
        $h .= " " x (63 - (10 + length $h) % 64) . "\n";
        open(my $f, ">:raw", $path) or die "$path: $!";
        print $f "\x93NUMPY\x01\x00", pack("v", length $h), $h, pack("$fmt*", @v); close $f or die;' "$@"
}
# 16 samples for tests/onnx/order.onnx (inputs 3x8x8, 7 classes): inputs uniform in [-1, 1) from an LCG.
npy "$tmp/x.npy" '<f8' '(16, 3, 8, 8)' 'd<' $(awk 'BEGIN { s = 12345; for (i = 0; i < 16 * 192; i++) {
    s = (s * 1103515245 + 12345) % 2147483648; printf "%.17g ", s / 2147483648 * 2 - 1 } }')
npy "$tmp/y.npy" '<i8' '(16,)' 'q<' $(seq 0 15 | awk '{ print $1 % 7 }')
onnx=tests/onnx/order.onnx
expect 0 "largest 3:" "$bin" exact --model "$onnx" --inputs "$tmp/x.npy" --targets "$tmp/y.npy" --samples all \
    --precision f64 --k 3
want=$(sed -n 's/^largest 3: *//p' <<<"$out")
# same_top3 OUTPUT: lanczos_onnx's eigenvalues (largest first) against `hessian exact`'s (ascending).
same_top3() {
    local got; got=$(grep -o 'eigenvalue [-0-9.e+]*' <<<"$1" | awk '{ print $2 }' | paste -sd' ')
    if awk -v g="$got" -v w="$want" 'BEGIN { n = split(g, a, " "); m = split(w, b, " "); if (n != 3 || m != 3) exit 1
            for (i = 1; i <= 3; i++) { d = a[4 - i] - b[i]; if (d < 0) d = -d; r = b[i] < 0 ? -b[i] : b[i]
                if (!(d <= 1e-5 * r)) exit 1 } }'; then ok; else bad "lanczos_onnx eigenvalues ($got) vs exact ($want)"; fi
}

# build_run KIND: builds both examples (shared, static: libhessian.a with shared system libraries, full: cc
# -static) and runs them.
build_run() {
    local kind=$1 libs flags=() exe
    case $kind in
        shared) libs=$(pkg-config --libs hessian) ;;
        static) libs=$(pkg-config --static --libs hessian); libs=${libs/-lhessian/-l:libhessian.a} ;;
        full) libs=$(pkg-config --static --libs hessian); flags=(-static) ;;
    esac
    for ex in hvp_builtin lanczos_onnx; do
        exe=$tmp/${ex}_$kind
        own=(); [[ $ex == hvp_builtin ]] && own=(-lm) # its own sqrt
        # shellcheck disable=SC2046,SC2086
        expect 0 "" "$cc" "${flags[@]}" -std=c11 -Wall -Wextra -Werror "examples/$ex.c" $(pkg-config --cflags hessian) \
            $libs "${own[@]}" -o "$exe"
        [[ -x $exe ]] || continue
        if [[ $kind == shared ]]; then
            expect 0 "libhessian\.so\.$major => $p/lib/libhessian\.so\.$major" env LD_LIBRARY_PATH="$p/lib" ldd "$exe"
            if [[ -e /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0 ]]; then
                grep -qE 'libopenblas\.so\.0 => /usr/lib/x86_64-linux-gnu/openblas-openmp/' <<<"$out" && ok ||
                    bad "$exe: OpenBLAS is not the OpenMP build"$'\n'"$out"
            fi
        else
            expect 0 "" readelf -d "$exe"
            grep -q 'libhessian' <<<"$out" && bad "$exe needs a shared libhessian" || ok
            [[ $kind == full ]] && { grep -q NEEDED <<<"$out" && bad "$exe is not fully static"$'\n'"$out" || ok; }
        fi
        if [[ $ex == hvp_builtin ]]; then
            expect 0 "relative error .*\(ok" env LD_LIBRARY_PATH="$p/lib" "$exe"
            grep -q "libhessian $version " <<<"$out" && ok || bad "$exe: hs_version() is not $version"$'\n'"$out"
        else
            expect 0 "converged" env LD_LIBRARY_PATH="$p/lib" "$exe" "$onnx" "$tmp/x.npy" "$tmp/y.npy" 3
            same_top3 "$out"
        fi
    done
}
build_run shared
build_run static
gfortran_a=$("$cc" -print-file-name=libgfortran.a)
if [[ $gfortran_a == /* && -e $gfortran_a ]]; then build_run full
else echo "test_cli_install: no libgfortran.a; the fully static link is skipped"; fi
expect 2 "usage" env LD_LIBRARY_PATH="$p/lib" "$tmp/lanczos_onnx_shared"
expect 1 "lanczos_onnx: .*missing\.onnx" env LD_LIBRARY_PATH="$p/lib" "$tmp/lanczos_onnx_shared" "$tmp/missing.onnx" \
    "$tmp/x.npy" "$tmp/y.npy"

# exports: the HS_API functions of the header, nothing else (linker-defined symbols allowed)
api=$(grep -oE '^HS_API [^(]*\(' include/hessian.h | sed -E 's/.*[ *]([a-z_0-9]+)\($/\1/' | sort -u)
dyn=$(nm -D --defined-only "$p/lib/libhessian.so" | awk '{ print $NF }' | grep -vxE '_init|_fini|_edata|_end|__bss_start' | sort -u)
[[ -n $api && $dyn == "$api" ]] && ok ||
    bad "libhessian.so exports differ from the header's HS_API functions:"$'\n'"$(diff <(echo "$api") <(echo "$dyn"))"
# the installed static library: global defined symbols (T D B R C W V ...) are hs_ names only
st=$(nm -g --defined-only "$p/lib/libhessian.a" | awk 'NF >= 2 && $0 !~ /:$/ { print $NF }' | sort -u)
[[ -n $st ]] && ! grep -qv '^hs_' <<<"$st" && ok ||
    bad "libhessian.a defines non-hs_ globals:"$'\n'"$(grep -v '^hs_' <<<"$st" | head -20)"
[[ $st == "$api" ]] && ok || bad "libhessian.a's globals differ from the header's HS_API functions"

# DESTDIR: staged under it, PREFIX in hessian.pc
stage=$tmp/stage
expect 0 "" "$make" --no-print-directory install BUILD="$build" PREFIX=/opt/hs DESTDIR="$stage"
[[ -f $stage/opt/hs/lib/libhessian.so.$version && -f $stage/opt/hs/include/hessian.h ]] && ok || bad "DESTDIR install"
grep -qx 'prefix=/opt/hs' "$stage/opt/hs/lib/pkgconfig/hessian.pc" && ok || bad "hessian.pc prefix under DESTDIR"
expect 0 "" "$make" --no-print-directory uninstall BUILD="$build" PREFIX=/opt/hs DESTDIR="$stage"
left=$(find "$stage" ! -type d)
[[ -z $left ]] && ok || bad "uninstall with DESTDIR left: $left"

# uninstall
expect 0 "" "$make" --no-print-directory uninstall BUILD="$build" PREFIX="$p"
left=$(find "$p" ! -type d)
[[ -z $left ]] && ok || bad "uninstall left: $left"
summary test_cli_install
