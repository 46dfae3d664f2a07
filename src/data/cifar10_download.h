/* cifar10_download.h: fetches the official CIFAR-10 binary release into DIR/cifar-10-batches-bin/, checking
 * its MD5 and the archive's members before anything is installed. Errors go through hs_error(). */
#ifndef HS_CIFAR10_DOWNLOAD_H
#define HS_CIFAR10_DOWNLOAD_H

#define CIFAR10_URL "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
#define CIFAR10_MD5 "c32a1d4ab5d03f1284b67883e8d87530"

/* Downloads CIFAR10_URL with curl (or wget), verifies CIFAR10_MD5, lists the archive and refuses any member
 * other than cifar-10-batches-bin/{data_batch_1..5.bin, test_batch.bin, batches.meta.txt, readme.html},
 * extracts those into a temporary folder inside dir, checks that each is a regular file (data files
 * 30,730,000 bytes) and renames them into dir/cifar-10-batches-bin/ (dir is created if needed). Does
 * nothing and succeeds when the data files are already there with the right sizes (in
 * dir/cifar-10-batches-bin/ or in dir itself). Without network access the error says so and explains how to
 * place the files by hand. Never prints: the tools' output is captured and quoted in error messages. */
int cifar10_download(const char *dir);

/* The same from another source (a mirror, or a file:// URL in tests) with its expected MD5 (hex). */
int cifar10_download_from(const char *dir, const char *url, const char *md5_hex);

#endif
