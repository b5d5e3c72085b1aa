/*
 * pool_mode.h - picks the C core's atomics variant for this extension build.
 * Included (via pool_atomic.pxd) before any core header.
 *
 * GIL builds: every call into the core holds the GIL, so plain operations
 * are enough and cost nothing (see src/pool_atomic.h).  Free-threaded builds
 * (Py_GIL_DISABLED) use real atomics.  POOL_FORCE_ATOMICS (a CMake option)
 * builds the atomic variant on a GIL build too, to measure or test it.
 */
#ifndef POOL_MODE_H
#define POOL_MODE_H
#include <Python.h>
#if !defined(Py_GIL_DISABLED) && !defined(POOL_FORCE_ATOMICS)
#define POOL_ATOMIC_PLAIN 1
#endif
#endif
