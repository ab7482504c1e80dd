/* Two per-request helpers of the load balancer, in C.

   Built with the compiled load balancer (lb/native.py) and used when present; the Python
   functions they stand in for stay the reference, and a test checks the two agree
   (tests/lb/test_native.py):

   - relayable(head, names): headers.relayable_py, whether a response head may be relayed as
     received (no hop-by-hop header among `names`, except `Connection: keep-alive`);
   - escaped(text): accesslog.escaped_py, a client-supplied access-log field for inside quotes.

   Why: compiled by mypyc, the Python versions cost about 1,700 and 400 instructions per call
   (splitting a head into a bytes object per line; two `in` tests through the sequence
   protocol); these scan the bytes in place. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* The next CRLF at or after `at`, or NULL. */
static const char *
find_crlf(const char *at, const char *end)
{
    while (at < end) {
        const char *cr = memchr(at, '\r', (size_t)(end - at));
        if (cr == NULL || cr + 1 >= end) {
            return NULL;
        }
        if (cr[1] == '\n') {
            return cr;
        }
        at = cr + 1;
    }
    return NULL;
}

static int
is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char
ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
}

/* Whether `text` (of `len` bytes) is `word` (lower case) in any ASCII case. */
static int
equals_lower(const char *text, Py_ssize_t len, const char *word)
{
    Py_ssize_t size = (Py_ssize_t)strlen(word);
    if (len != size) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        if (ascii_lower(text[i]) != word[i]) {
            return 0;
        }
    }
    return 1;
}

/* 1 when the header line [line, stop) must not be relayed as is, 0 when it may, -1 on error.
   The first-letter filter is headers.relayable_py's: c (with n fourth), k, p, t, u. */
static int
line_is_hop(const char *line, const char *stop, PyObject *names)
{
    Py_ssize_t len = stop - line;
    if (len == 0) {
        return 0;
    }
    char first = (char)(line[0] | 0x20);
    if (first == 'c') {
        if (len < 4 || (char)(line[3] | 0x20) != 'n') {
            return 0;
        }
    }
    else if (first != 't' && first != 'k' && first != 'p' && first != 'u') {
        return 0;
    }
    const char *colon = memchr(line, ':', (size_t)len);
    if (colon == NULL) {
        return 0;
    }
    const char *name_end = colon;
    while (name_end > line && is_blank(name_end[-1])) {
        name_end--;
    }
    PyObject *name = PyBytes_FromStringAndSize(NULL, name_end - line);
    if (name == NULL) {
        return -1;
    }
    char *lowered = PyBytes_AS_STRING(name);
    for (Py_ssize_t i = 0; i < name_end - line; i++) {
        lowered[i] = ascii_lower(line[i]);
    }
    int found = PySet_Contains(names, name);
    int connection = equals_lower(lowered, name_end - line, "connection");
    Py_DECREF(name);
    if (found <= 0 || !connection) {
        return found;
    }
    const char *value = colon + 1, *value_end = stop;
    while (value < value_end && is_blank(*value)) {
        value++;
    }
    while (value_end > value && is_blank(value_end[-1])) {
        value_end--;
    }
    return !equals_lower(value, value_end - value, "keep-alive");
}

static PyObject *
relayable(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyAnySet_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "relayable(head: bytes, names: frozenset[bytes])");
        return NULL;
    }
    const char *head = PyBytes_AS_STRING(args[0]);
    const char *end = head + PyBytes_GET_SIZE(args[0]);
    /* The first line is the status line; each CRLF starts a header line. */
    const char *crlf = find_crlf(head, end);
    while (crlf != NULL) {
        const char *line = crlf + 2;
        crlf = find_crlf(line, end);
        int hop = line_is_hop(line, crlf != NULL ? crlf : end, args[1]);
        if (hop < 0) {
            return NULL;
        }
        if (hop) {
            Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

static PyObject *
escaped(PyObject *module, PyObject *text)
{
    if (!PyBytes_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "escaped(text: bytes)");
        return NULL;
    }
    const char *in = PyBytes_AS_STRING(text);
    Py_ssize_t size = PyBytes_GET_SIZE(text), specials = 0;
    if (size == 0) {
        return PyBytes_FromStringAndSize("-", 1);
    }
    /* Nearly always neither is there: two memchr (vectorised) say so fastest. */
    if (memchr(in, '"', (size_t)size) == NULL && memchr(in, '\\', (size_t)size) == NULL) {
        return Py_NewRef(text);
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        specials += in[i] == '"' || in[i] == '\\';
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size + specials);
    if (out == NULL) {
        return NULL;
    }
    char *to = PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < size; i++) {
        if (in[i] == '"' || in[i] == '\\') {
            *to++ = '\\';
        }
        *to++ = in[i];
    }
    return out;
}

static PyMethodDef methods[] = {
    {"relayable", (PyCFunction)(void (*)(void))relayable, METH_FASTCALL,
     "relayable(head, names): whether a response head has no hop-by-hop header but "
     "Connection: keep-alive."},
    {"escaped", escaped, METH_O,
     "escaped(text): text for inside a quoted access-log field; b'-' when empty."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "microforum.lb._speedups",
    "Per-request helpers of the load balancer, in C (see _speedups.c).", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
