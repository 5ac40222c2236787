/* bp-device-step.h: a watch over a training step that must stay on its device (the step a CUDA
 * graph captures). The engine's front-ends that would copy between host and GPU memory or wait
 * for the GPU (an upload of an output gradient, an index check read back, a tensor moved
 * between devices) note it, on every device, and the watch keeps the first such place. The
 * trainer refuses a capture with it; on the CPU the same watch tells, without a GPU, whether a
 * step could be captured. Per thread. */
#pragma once

#include <stdbool.h>

/* Starts watching this thread's engine calls (forgetting an earlier watch's note). */
void bp_device_step_begin (void);

/* Stops watching; the first place noted since bp_device_step_begin ("the loss checks its
 * targets on the host", ...), or NULL when the step stayed on the device. The text stays valid
 * until the next bp_device_step_begin on this thread. */
const char *bp_device_step_end (void);

/* Notes that the engine is about to copy between host and device memory or wait for the
 * device, naming where; kept when it is the watch's first. Nothing without a watch. */
void bp_device_step_note (const char *what);
