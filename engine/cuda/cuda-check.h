/* cuda-check.h: check macros that turn a failed CUDA, cuBLAS or cuDNN call into
 * bp_set_error (BP_ERR_DEVICE, "<call> failed at file:line: <error string>") and a BpStatus.
 * Never exit, never abort: the error travels up to the trainer, the CLI or the GUI.
 *
 *   BP_CUDA_TRY (call)     evaluates to BP_OK or BP_ERR_DEVICE (error set), for expressions
 *   BP_CUDA_CHECK (call)   returns that status from the enclosing BpStatus function on failure
 *   BP_CUDA_CHECK_LAUNCH ("fill")   after a kernel launch: checks cudaGetLastError ()
 *   BP_CUDA_LAUNCH_TRY ("fill")     the same as an expression (BP_OK or the error), for code
 *                                   that must free scratch memory before it returns
 *   BP_CUBLAS_TRY / BP_CUBLAS_CHECK, BP_CUDNN_TRY / BP_CUDNN_CHECK   the same for the libraries
 *
 * Usable from C (cuda-backend.c) and from nvcc (kernel files). */
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "../bp-tensor.h"

/* Sets the error "<call> failed at <file>:<line>: <what>" and returns BP_ERR_DEVICE. */
BpStatus bp_cuda_fail (const char *call, const char *file, int line, const char *what);
/* The same for the three error types (cuDNN adds its last detailed message when it has one). */
BpStatus bp_cuda_fail_rt (cudaError_t err, const char *call, const char *file, int line);
BpStatus bp_cuda_fail_cublas (cublasStatus_t st, const char *call, const char *file, int line);
BpStatus bp_cuda_fail_cudnn (cudnnStatus_t st, const char *call, const char *file, int line);

#ifdef __cplusplus
}
#endif

/* Inline so that `call` is evaluated once and the _TRY macros stay expressions. */
static inline BpStatus
bp_cuda_rt_status_ (cudaError_t err, const char *call, const char *file, int line)
{
  return err == cudaSuccess ? BP_OK : bp_cuda_fail_rt (err, call, file, line);
}

static inline BpStatus
bp_cublas_status_ (cublasStatus_t st, const char *call, const char *file, int line)
{
  return st == CUBLAS_STATUS_SUCCESS ? BP_OK : bp_cuda_fail_cublas (st, call, file, line);
}

static inline BpStatus
bp_cudnn_status_ (cudnnStatus_t st, const char *call, const char *file, int line)
{
  return st == CUDNN_STATUS_SUCCESS ? BP_OK : bp_cuda_fail_cudnn (st, call, file, line);
}

#define BP_CUDA_TRY(call) bp_cuda_rt_status_ ((call), #call, __FILE__, __LINE__)
#define BP_CUBLAS_TRY(call) bp_cublas_status_ ((call), #call, __FILE__, __LINE__)
#define BP_CUDNN_TRY(call) bp_cudnn_status_ ((call), #call, __FILE__, __LINE__)

#define BP_CUDA_CHECK(call)                                                                    \
  do {                                                                                         \
    BpStatus bp_check_s_ = BP_CUDA_TRY (call);                                                 \
    if (bp_check_s_ != BP_OK)                                                                  \
      return bp_check_s_;                                                                      \
  } while (0)

#define BP_CUBLAS_CHECK(call)                                                                  \
  do {                                                                                         \
    BpStatus bp_check_s_ = BP_CUBLAS_TRY (call);                                               \
    if (bp_check_s_ != BP_OK)                                                                  \
      return bp_check_s_;                                                                      \
  } while (0)

#define BP_CUDNN_CHECK(call)                                                                   \
  do {                                                                                         \
    BpStatus bp_check_s_ = BP_CUDNN_TRY (call);                                                \
    if (bp_check_s_ != BP_OK)                                                                  \
      return bp_check_s_;                                                                      \
  } while (0)

/* After `kernel<<<...>>> (...)`: a bad launch configuration or a missing kernel image shows up
 * here; faults inside the kernel show up at the next synchronize. */
#define BP_CUDA_CHECK_LAUNCH(name)                                                             \
  do {                                                                                         \
    cudaError_t bp_launch_err_ = cudaGetLastError ();                                          \
    if (bp_launch_err_ != cudaSuccess)                                                         \
      return bp_cuda_fail_rt (bp_launch_err_, name " kernel launch", __FILE__, __LINE__);      \
  } while (0)

#define BP_CUDA_LAUNCH_TRY(name) bp_cuda_launch_status_ (name " kernel launch", __FILE__, __LINE__)

static inline BpStatus
bp_cuda_launch_status_ (const char *what, const char *file, int line)
{
  cudaError_t err = cudaGetLastError ();
  return err == cudaSuccess ? BP_OK : bp_cuda_fail_rt (err, what, file, line);
}
