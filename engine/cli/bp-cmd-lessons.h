/* bp-cmd-lessons.h: the `backprop lessons` and `backprop lesson show|run` commands. */
#pragma once

/* Each returns the program's exit status: 0 done, 1 failed (lesson run: a goal not met),
 * 2 a usage error. argv[0] is the command's name. */
int bp_cmd_lessons (int argc, char **argv);
int bp_cmd_lesson (int argc, char **argv);
