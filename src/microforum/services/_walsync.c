/* The syncing thread of services/walsync.py, in C: it never takes Python's interpreter lock.

   start(requests, done) starts a detached thread that owns both descriptors: it reads a
   request (a file descriptor, a native int32) from the pipe `requests`, flushes that file to
   the disk (fdatasync; fsync where there is none), and writes the outcome (0, or the errno, a
   native int32) to the pipe `done`; when `requests` reaches its end it closes both and ends.
   walsync._serve is the same loop in Python, the reference (tests/services/test_walsync.py
   runs both).

   Why: a Python thread needs the interpreter's lock back after each blocking call, and under
   load the event loop holds it: each hand-over waits up to the switch interval
   (docs/store.md, "Group commit on SQLite"). This thread has nothing to hand over. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    int requests;
    int done;
} pipes;

/* 1: `n` bytes read; 0: the end of the pipe (or an error) before them. */
static int
read_exactly(int fd, char *into, size_t n)
{
    while (n > 0) {
        ssize_t got = read(fd, into, n);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            return 0;
        }
        into += got;
        n -= (size_t)got;
    }
    return 1;
}

/* 1: all `n` bytes written; 0: the reader is gone. */
static int
write_exactly(int fd, const char *from, size_t n)
{
    while (n > 0) {
        ssize_t put = write(fd, from, n);
        if (put < 0 && errno == EINTR) {
            continue;
        }
        if (put <= 0) {
            return 0;
        }
        from += put;
        n -= (size_t)put;
    }
    return 1;
}

static int32_t
flush_to_disk(int fd)
{
    for (;;) {
#if defined(__linux__)
        int failed = fdatasync(fd);
#else
        int failed = fsync(fd);
#endif
        if (!failed) {
            return 0;
        }
        if (errno != EINTR) {
            return (int32_t)errno;
        }
    }
}

static void *
serve(void *arg)
{
    pipes own = *(pipes *)arg;
    free(arg);
    int32_t fd;
    while (read_exactly(own.requests, (char *)&fd, sizeof fd)) {
        int32_t outcome = flush_to_disk(fd);
        if (!write_exactly(own.done, (const char *)&outcome, sizeof outcome)) {
            break;
        }
    }
    close(own.requests);
    close(own.done);
    return NULL;
}

static PyObject *
start(PyObject *self, PyObject *args)
{
    int requests, done;
    if (!PyArg_ParseTuple(args, "ii:start", &requests, &done)) {
        return NULL;
    }
    pipes *own = malloc(sizeof *own);
    if (own == NULL) {
        return PyErr_NoMemory();
    }
    own->requests = requests;
    own->done = done;
    pthread_attr_t attr;
    pthread_t thread;
    int err = pthread_attr_init(&attr);
    if (!err) {
        err = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (!err) {
            err = pthread_create(&thread, &attr, serve, own);
        }
        pthread_attr_destroy(&attr);
    }
    if (err) {
        free(own);
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"start", start, METH_VARARGS,
     "start(requests, done): a thread syncing each file descriptor read from `requests` and "
     "writing its outcome to `done`; it owns and closes both."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef walsync_module = {
    PyModuleDef_HEAD_INIT, "microforum.services._walsync",
    "The syncing thread of services/walsync.py, in C (see _walsync.c).", -1, methods,
};

PyMODINIT_FUNC
PyInit__walsync(void)
{
    return PyModule_Create(&walsync_module);
}
