/*
 * pool_frames.h - where a Python frame is, cheaply: its code object and the
 * offset of its current instruction, for the acquiring stack of a tracked
 * hand-out (pool_ext/_holders.pxi).  The line number is computed from the
 * two (PyCode_Addr2Line, which walks the code's line table: measured at
 * ~2,200 instructions for the 16 frames of one hand-out on 3.11) only when
 * a record is read, not at every hand-out.
 *
 * A CPython helper, not part of the C core (src/ has no Python in it).
 */
#ifndef POOL_FRAMES_H
#define POOL_FRAMES_H
#include <Python.h>
#include <frameobject.h>

/* The frame's last instruction, as a byte offset into its code. */
static inline int pool_frame_lasti(PyFrameObject *f)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyFrame_GetLasti(f);                  /* public from 3.11, bytes */
#elif PY_VERSION_HEX >= 0x030A0000
    return f->f_lasti * (int)sizeof(_Py_CODEUNIT);   /* 3.10 counts code units */
#else
    return f->f_lasti;                           /* 3.9: bytes */
#endif
}

/* The line of byte offset `lasti` in code (a code object). */
static inline int pool_code_line(PyObject *code, int lasti)
{
    return PyCode_Addr2Line((PyCodeObject *)code, lasti);
}
#endif /* POOL_FRAMES_H */
