/* commands.h: hessian's sub-commands. Each is written once with `real` and compiled for float32 and float64
 * (cmd_X_f32 / cmd_X_f64); the CLI's main picks one from --precision. A command parses its own options,
 * prints results on stdout and progress on stderr, and returns the process exit status (0 ok, 1 error after
 * printing the message, 2 bad usage). */
#ifndef HS_COMMANDS_H
#define HS_COMMANDS_H

#define HS_DECLARE_COMMAND(name)                  \
    int cmd_##name##_f32(int argc, char **argv); \
    int cmd_##name##_f64(int argc, char **argv);

HS_DECLARE_COMMAND(train)
HS_DECLARE_COMMAND(eval)
HS_DECLARE_COMMAND(hvp)
HS_DECLARE_COMMAND(exact)
HS_DECLARE_COMMAND(power)
HS_DECLARE_COMMAND(study)
HS_DECLARE_COMMAND(lanczos)
HS_DECLARE_COMMAND(trace)
HS_DECLARE_COMMAND(diag)
HS_DECLARE_COMMAND(density)
HS_DECLARE_COMMAND(info)

#endif
