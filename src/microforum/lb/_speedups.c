/* Per-request helpers of the load balancer, in C.

   Built at install time (setup.py, optional) and with the compiled load balancer
   (lb/native.py), and used when present, interpreted or compiled; the Python
   functions they stand in for stay the reference, and a test checks the two agree
   (tests/lb/test_speedups.py):

   - relayable(head, names): headers.relayable_py, whether a response head may be relayed as
     received (no hop-by-hop header among `names`, except `Connection: keep-alive`);
   - whole_response(data, names, max_head): headers.whole_response_py, whether a read from a
     target is one whole answer that can go to the client as received, and its status;
   - escaped(text): accesslog.escaped_py, a client-supplied access-log field for inside quotes
     (printable ASCII kept; any other byte, the quote and the backslash as a hex escape);
   - head_of(data) and forward_raw(chunk, forwarded, trace): headers.head_of_py and
     headers.forward_raw_py, a head cut at its blank line (and our lines appended) without the
     tuple and the copies `partition` makes;
   - split_plain(data): reader.split_plain_py, a plain request head split into its request
     line's parts and its fields in one pass (anything unusual is left to the Python reader).
   - step(table, events, illegal, phase, event): lifecycle.request_step_py and
     response_step_py, a transition looked up in the flat table lifecycle.py gives it
     (interpreted only: see there);
   - compose(clock, source, ...): accesslog.compose_py, an access-log line from its cached
     runs and the request's own fields, in one buffer (used interpreted only: see there).

   Why: compiled by mypyc, the Python versions cost about 1,700 and 400 instructions per call
   (a bytes object per head line; two `in` tests through the sequence protocol), and
   `partition` makes a tuple and two copies; these scan the bytes in place. An access-log line
   composed here costs the compiled build more than mypyc's one-join template (the numbers
   boxed for the call), and the interpreted one a tenth of compose_py. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
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

/* --- whole_response: headers.whole_response_py ----------------------------------------- */

/* Byte classes, by table (a lookup per byte): TOKEN, a character of a field name (RFC 9110
   §5.6.2's tchar); TEXT, one of a reason phrase or a field value as accepted here (visible
   ASCII, SP, HTAB). Filled once, at import (fill_classes). */
#define TOKEN 1
#define TEXT 2
static unsigned char classes[256];

static void
fill_classes(void)
{
    for (int c = 0; c < 256; c++) {
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        int token = alnum || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
        int text = (c >= 0x20 && c < 0x7F) || c == '\t';
        classes[c] = (unsigned char)((token ? TOKEN : 0) | (text ? TEXT : 0));
    }
}

/* Past the text bytes from `at`; NULL unless CRLF follows them. */
static const unsigned char *
text_then_crlf(const unsigned char *at, const unsigned char *end)
{
    while (at < end && (classes[*at] & TEXT)) {
        at++;
    }
    return (at + 1 < end && at[0] == '\r' && at[1] == '\n') ? at : NULL;
}

/* whole_response(data, names, max_head): the status of a read that is one whole, plain answer
   (see headers.whole_response_py, the reference); 0 for any other. */
static PyObject *
whole_response(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyAnySet_Check(args[1]) || !PyLong_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "whole_response(data: bytes, names: frozenset[bytes], max_head: int)");
        return NULL;
    }
    Py_ssize_t max_head = PyLong_AsSsize_t(args[2]);
    if (max_head == -1 && PyErr_Occurred()) {
        return NULL;
    }
    const unsigned char *start = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    const unsigned char *end = start + PyBytes_GET_SIZE(args[0]), *at = start;
    /* The status line: HTTP/1.1, a status 200-599 (not 204 or 304), a space, a reason. */
    if (end - at < 13 || memcmp(at, "HTTP/1.1 ", 9) != 0 || at[9] < '2' || at[9] > '5'
        || at[10] < '0' || at[10] > '9' || at[11] < '0' || at[11] > '9' || at[12] != ' ') {
        return PyLong_FromLong(0);
    }
    long status = (at[9] - '0') * 100 + (at[10] - '0') * 10 + (at[11] - '0');
    if (status == 204 || status == 304 || (at = text_then_crlf(at + 13, end)) == NULL) {
        return PyLong_FromLong(0);
    }
    at += 2;
    /* The fields, up to the blank line: token, colon, text; one Content-Length, no hop-by-hop
       field but Connection: keep-alive. */
    long long length = -1;
    while (!(at + 1 < end && at[0] == '\r' && at[1] == '\n')) {
        const unsigned char *line = at;
        while (at < end && (classes[*at] & TOKEN)) {
            at++;
        }
        if (at == line || at >= end || *at != ':') {
            return PyLong_FromLong(0);
        }
        const unsigned char *colon = at;
        if ((at = text_then_crlf(colon + 1, end)) == NULL) {
            return PyLong_FromLong(0);
        }
        if (equals_lower((const char *)line, colon - line, "content-length")) {
            const unsigned char *digit = colon + 1, *stop = at;
            while (digit < stop && is_blank((char)*digit)) {
                digit++;
            }
            while (stop > digit && is_blank((char)stop[-1])) {
                stop--;
            }
            if (length >= 0 || stop == digit || stop - digit > 15) {
                return PyLong_FromLong(0);
            }
            for (length = 0; digit < stop; digit++) {
                if (*digit < '0' || *digit > '9') {
                    return PyLong_FromLong(0);
                }
                length = length * 10 + (*digit - '0');
            }
        } else {
            int hop = line_is_hop((const char *)line, (const char *)at, args[1]);
            if (hop != 0) {
                return hop < 0 ? NULL : PyLong_FromLong(0);
            }
        }
        at += 2;
    }
    /* `at`: the blank line. The head (without its last CRLF) within the limit, the body all
       the rest. */
    if (length < 0 || (at - 2) - start > max_head || end - (at + 2) != length) {
        return PyLong_FromLong(0);
    }
    return PyLong_FromLong(status);
}

/* --- escaped: accesslog.escaped_py ----------------------------------------------------- */

/* Whether a byte is written as it is: printable ASCII but the quote and the backslash. */
static int
plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
}

/* Where the first byte that is not `plain` may be: the start of the first 8-byte word holding
   one (or the last whole word's end, for the rest to be checked byte by byte). Each word is
   tested at once (the usual word-at-a-time tests for a byte below or above a bound and for a
   zero byte) for a byte below 0x20, above 0x7E, or equal to '"' or '\\'. A word can be flagged
   for nothing (a borrow or a carry between bytes): the byte loop after it decides. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
static Py_ssize_t
plain_words(const unsigned char *in, Py_ssize_t size)
{
    Py_ssize_t at = 0;
    for (; at + 8 <= size; at += 8) {
        uint64_t w, quote, backslash;
        memcpy(&w, in + at, 8);
        quote = w ^ (ONES * '"');
        backslash = w ^ (ONES * '\\');
        uint64_t below = (w - ONES * 0x20) & ~w;
        uint64_t above = (w + ONES * (127 - 0x7E)) | w;
        uint64_t equal = ((quote - ONES) & ~quote) | ((backslash - ONES) & ~backslash);
        if ((below | above | equal) & HIGHS) {
            break;
        }
    }
    return at;
}

static PyObject *
escaped(PyObject *module, PyObject *text)
{
    if (!PyBytes_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "escaped(text: bytes)");
        return NULL;
    }
    const unsigned char *in = (const unsigned char *)PyBytes_AS_STRING(text);
    Py_ssize_t size = PyBytes_GET_SIZE(text), at, escapes = 0;
    if (size == 0) {
        return PyBytes_FromStringAndSize("-", 1);
    }
    at = plain_words(in, size);
    while (at < size && plain(in[at])) {
        at++;
    }
    if (at == size) { /* nearly always: nothing to escape */
        return Py_NewRef(text);
    }
    for (Py_ssize_t i = at; i < size; i++) {
        escapes += !plain(in[i]);
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size + 3 * escapes);
    if (out == NULL) {
        return NULL;
    }
    static const char hex[] = "0123456789abcdef";
    char *to = PyBytes_AS_STRING(out);
    memcpy(to, in, (size_t)at);
    to += at;
    for (; at < size; at++) {
        unsigned char c = in[at];
        if (plain(c)) {
            *to++ = (char)c;
        } else {
            *to++ = '\\';
            *to++ = 'x';
            *to++ = hex[c >> 4];
            *to++ = hex[c & 0xF];
        }
    }
    return out;
}

/* --- heads: headers.head_of_py and headers.forward_raw_py ------------------------------- */

/* Where the blank line ending the head at the start of `data` begins, or NULL. (From CR to
   CR with memchr: for a head of a few lines, cheaper than memmem's set-up.) */
static const char *
blank_line(PyObject *data)
{
    const char *at = PyBytes_AS_STRING(data), *end = at + PyBytes_GET_SIZE(data);
    while (at + 4 <= end) {
        const char *cr = memchr(at, '\r', (size_t)(end - at - 3));
        if (cr == NULL) {
            return NULL;
        }
        if (memcmp(cr, "\r\n\r\n", 4) == 0) {
            return cr;
        }
        at = cr + 1;
    }
    return NULL;
}

static PyObject *
head_of(PyObject *module, PyObject *data)
{
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "head_of(data: bytes)");
        return NULL;
    }
    const char *blank = blank_line(data);
    if (blank == NULL) {
        Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(data), blank - PyBytes_AS_STRING(data));
}

static PyObject *
forward_raw(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char trace_name[] = "X-Amzn-Trace-Id: ";
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "forward_raw(chunk: bytes, forwarded: bytes, trace: bytes)");
        return NULL;
    }
    const char *chunk = PyBytes_AS_STRING(args[0]);
    const char *blank = blank_line(args[0]);
    Py_ssize_t head = blank != NULL ? blank - chunk : PyBytes_GET_SIZE(args[0]);
    Py_ssize_t forwarded = PyBytes_GET_SIZE(args[1]), trace = PyBytes_GET_SIZE(args[2]);
    Py_ssize_t name = (Py_ssize_t)(sizeof trace_name - 1);
    PyObject *out = PyBytes_FromStringAndSize(NULL, head + 2 + forwarded + name + trace + 4);
    if (out == NULL) {
        return NULL;
    }
    char *to = PyBytes_AS_STRING(out);
    memcpy(to, chunk, (size_t)head);
    to += head;
    memcpy(to, "\r\n", 2);
    to += 2;
    memcpy(to, PyBytes_AS_STRING(args[1]), (size_t)forwarded);
    to += forwarded;
    memcpy(to, trace_name, (size_t)name);
    to += name;
    memcpy(to, PyBytes_AS_STRING(args[2]), (size_t)trace);
    to += trace;
    memcpy(to, "\r\n\r\n", 4);
    return out;
}

/* A tuple of two bytes objects made from two runs of bytes. */
static PyObject *
pair(const char *a, Py_ssize_t a_len, const char *b, Py_ssize_t b_len)
{
    PyObject *first = PyBytes_FromStringAndSize(a, a_len);
    PyObject *second = PyBytes_FromStringAndSize(b, b_len);
    if (first == NULL || second == NULL) {
        Py_XDECREF(first);
        Py_XDECREF(second);
        return NULL;
    }
    PyObject *both = PyTuple_New(2);
    if (both == NULL) {
        Py_DECREF(first);
        Py_DECREF(second);
        return NULL;
    }
    PyTuple_SET_ITEM(both, 0, first);
    PyTuple_SET_ITEM(both, 1, second);
    return both;
}

/* split_plain(data): a plain request head at the start of `data`, split; None for anything
   else (reader.split_plain_py is the reference: see there). */
static PyObject *
split_plain(PyObject *module, PyObject *data)
{
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "split_plain(data: bytes)");
        return NULL;
    }
    const char *start = PyBytes_AS_STRING(data);
    const char *end = start + PyBytes_GET_SIZE(data);
    const char *blank = blank_line(data);
    if (blank == NULL) {
        Py_RETURN_NONE;
    }
    /* The request line: METHOD SP TARGET SP VERSION, visible ASCII, exactly two spaces. */
    const char *line_end = find_crlf(start, blank + 2);
    const char *sp1 = NULL, *sp2 = NULL;
    for (const char *c = start; c < line_end; c++) {
        unsigned char b = (unsigned char)*c;
        if (b < 0x20 || b > 0x7e) {
            Py_RETURN_NONE;
        }
        if (b == ' ') {
            if (sp1 == NULL) {
                sp1 = c;
            } else if (sp2 == NULL) {
                sp2 = c;
            } else {
                Py_RETURN_NONE;
            }
        }
    }
    if (sp2 == NULL || sp1 == start || sp2 == sp1 + 1 || sp2 + 1 == line_end) {
        Py_RETURN_NONE;
    }
    PyObject *headers = PyList_New(0);
    if (headers == NULL) {
        return NULL;
    }
    const char *at = line_end + 2;
    while (at < blank + 2) {
        const char *next = find_crlf(at, blank + 2);
        const char *colon = NULL;
        if (next == NULL || next == at || is_blank(*at)) {
            goto not_plain;
        }
        for (const char *c = at; c < next; c++) {
            unsigned char b = (unsigned char)*c;
            if ((b < 0x20 && b != '\t') || b > 0x7e) {
                goto not_plain;
            }
            if (b == ':' && colon == NULL) {
                colon = c;
            }
        }
        if (colon == NULL) {
            goto not_plain;
        }
        const char *value = colon + 1, *value_end = next;
        while (value < value_end && is_blank(*value)) {
            value++;
        }
        while (value_end > value && is_blank(value_end[-1])) {
            value_end--;
        }
        PyObject *field = pair(at, colon - at, value, value_end - value);
        if (field == NULL || PyList_Append(headers, field) < 0) {
            Py_XDECREF(field);
            Py_DECREF(headers);
            return NULL;
        }
        Py_DECREF(field);
        at = next + 2;
    }
    PyObject *result = PyTuple_New(6);
    if (result == NULL) {
        Py_DECREF(headers);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 4, headers);
    PyObject *parts[4] = {
        PyBytes_FromStringAndSize(start, blank - start),
        PyBytes_FromStringAndSize(start, sp1 - start),
        PyBytes_FromStringAndSize(sp1 + 1, sp2 - sp1 - 1),
        PyBytes_FromStringAndSize(sp2 + 1, line_end - sp2 - 1),
    };
    PyObject *after = PyLong_FromSsize_t(blank - start + 4);
    PyTuple_SET_ITEM(result, 5, after);
    for (int i = 0; i < 4; i++) {
        PyTuple_SET_ITEM(result, i, parts[i]);
    }
    if (parts[0] == NULL || parts[1] == NULL || parts[2] == NULL || parts[3] == NULL || after == NULL) {
        Py_DECREF(result);
        return NULL;
    }
    (void)end;
    return result;
not_plain:
    Py_DECREF(headers);
    Py_RETURN_NONE;
}

/* --- the access-log line: accesslog._compose_py --------------------------------------- */

/* Three decimal digits of `n` (0-999) at `to`. */
static void
digits3(char *to, long n)
{
    to[0] = (char)('0' + n / 100);
    to[1] = (char)('0' + n / 10 % 10);
    to[2] = (char)('0' + n % 10);
}

/* `n` in decimal at `to` (room for 21 bytes, as "%lld" writes it); its length. */
static Py_ssize_t
decimal(char *to, long long n)
{
    char digits[20];
    int count = 0;
    unsigned long long rest = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    do {
        digits[count++] = (char)('0' + rest % 10);
        rest /= 10;
    } while (rest != 0);
    Py_ssize_t size = 0;
    if (n < 0) {
        to[size++] = '-';
    }
    while (count > 0) {
        to[size++] = digits[--count];
    }
    return size;
}

/* A processing time and its space, as accesslog._seconds_space writes it, at `to` (room for
   64 bytes); its length, or -1 with an exception set. */
static Py_ssize_t
seconds_space(char *to, double duration)
{
    if (duration < 0) {
        memcpy(to, "-1 ", 3);
        return 3;
    }
    long ms = duration < 1 ? (long)(duration * 1000) : 1000;
    if (ms < 1000) {
        memcpy(to, "0.", 2);
        digits3(to + 2, ms);
        to[5] = ' ';
        return 6;
    }
    char *text = PyOS_double_to_string(duration, 'f', 3, 0, NULL); /* as b"%.3f" does */
    if (text == NULL) {
        return -1;
    }
    size_t size = strlen(text);
    if (size > 62) {
        PyMem_Free(text);
        PyErr_SetString(PyExc_ValueError, "processing time out of range");
        return -1;
    }
    memcpy(to, text, size);
    to[size] = ' ';
    PyMem_Free(text);
    return (Py_ssize_t)size + 1;
}

/* The clock's head for `second` (a new reference): what `clock.head(second)` gives, kept for
   the next line of the same second (a line's head depends on its second alone). */
static long long head_second = -1;
static PyObject *head_bytes = NULL;

static PyObject *
clock_head(PyObject *clock, long long second)
{
    if (second != head_second || head_bytes == NULL) {
        PyObject *head = PyObject_CallMethod(clock, "head", "L", second);
        if (head == NULL) {
            return NULL;
        }
        if (!PyBytes_Check(head)) {
            Py_DECREF(head);
            PyErr_SetString(PyExc_TypeError, "clock.head gave no bytes");
            return NULL;
        }
        Py_XSETREF(head_bytes, head);
        head_second = second;
    }
    return Py_NewRef(head_bytes);
}

/* compose(clock, source, request_time, target_time, response_time, statuses, received, sent,
   request, agent, trace, rule, created, sent_at, tail): accesslog._compose_py's line. */
static PyObject *
compose(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const int bytes_args[] = {1, 5, 8, 9, 10, 11, 14};
    if (nargs != 15) {
        goto wrong;
    }
    for (size_t i = 0; i < sizeof bytes_args / sizeof bytes_args[0]; i++) {
        if (!PyBytes_Check(args[bytes_args[i]])) {
            goto wrong;
        }
    }
    if (!PyLong_Check(args[6]) || !PyLong_Check(args[7])) {
        goto wrong;
    }
    double times[3], created = PyFloat_AsDouble(args[12]), sent_at = PyFloat_AsDouble(args[13]);
    for (int i = 0; i < 3; i++) {
        times[i] = PyFloat_AsDouble(args[2 + i]);
    }
    long long received = PyLong_AsLongLong(args[6]), sent = PyLong_AsLongLong(args[7]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    long long second = (long long)sent_at;
    long at_us = (long)((sent_at - (double)second) * 1000000);
    long created_us = (long)((created - (double)(long long)created) * 1000000);
    if (at_us < 0 || at_us > 999999 || created_us < 0 || created_us > 999999) {
        PyErr_SetString(PyExc_ValueError, "time out of range");
        return NULL;
    }
    char numbers[3 * 64 + 64];
    Py_ssize_t lengths[5], at = 0;
    for (int i = 0; i < 3; i++) {
        lengths[i] = seconds_space(numbers + at, times[i]);
        if (lengths[i] < 0) {
            return NULL;
        }
        at += lengths[i];
    }
    lengths[3] = decimal(numbers + at, received);
    numbers[at + lengths[3]++] = ' ';
    at += lengths[3];
    lengths[4] = decimal(numbers + at, sent);
    PyObject *head = clock_head(args[0], second);
    if (head == NULL) {
        return NULL;
    }
    PyObject *request = escaped(module, args[8]);
    PyObject *trace = request == NULL ? NULL : escaped(module, args[10]);
    if (trace == NULL) {
        Py_DECREF(head);
        Py_XDECREF(request);
        return NULL;
    }
    PyObject *runs[] = {head, args[1], args[5], request, args[9], trace, args[11], args[14]};
    Py_ssize_t size = 6 + 6 + 2;
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        size += PyBytes_GET_SIZE(runs[i]);
    }
    for (int i = 0; i < 5; i++) {
        size += lengths[i];
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out != NULL) {
        char *to = PyBytes_AS_STRING(out);
#define RUN(object)                                                                     \
    do {                                                                                \
        memcpy(to, PyBytes_AS_STRING(object), (size_t)PyBytes_GET_SIZE(object));     \
        to += PyBytes_GET_SIZE(object);                                                 \
    } while (0)
        RUN(head);
        digits3(to, at_us / 1000);
        digits3(to + 3, at_us % 1000);
        to += 6;
        RUN(args[1]);
        Py_ssize_t times_size = lengths[0] + lengths[1] + lengths[2];
        memcpy(to, numbers, (size_t)times_size);
        to += times_size;
        RUN(args[5]);
        memcpy(to, numbers + times_size, (size_t)(lengths[3] + lengths[4]));
        to += lengths[3] + lengths[4];
        memcpy(to, " \"", 2);
        to += 2;
        RUN(request);
        RUN(args[9]);
        RUN(trace);
        RUN(args[11]);
        digits3(to, created_us / 1000);
        digits3(to + 3, created_us % 1000);
        to += 6;
        RUN(args[14]);
#undef RUN
    }
    Py_DECREF(head);
    Py_DECREF(request);
    Py_DECREF(trace);
    return out;
wrong:
    PyErr_SetString(PyExc_TypeError,
                    "compose(clock, source: bytes, 3 times: float, statuses: bytes, received: int, "
                    "sent: int, request, agent, trace, rule: bytes, created, sent_at: float, "
                    "tail: bytes)");
    return NULL;
}

/* --- the exchange's life cycle: lifecycle.request_step_py / response_step_py --------------- */

/* step(table, events, illegal, phase, event): table[phase * events + event] (a list of ints,
   -1 where the transition table has no row), or what illegal(phase, event) gives (it raises).
   Bound to a table by functools.partial in lifecycle.py. */
static PyObject *
step(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "step(table: list, events, illegal, phase, event)");
        return NULL;
    }
    Py_ssize_t events = PyLong_AsSsize_t(args[1]);
    Py_ssize_t phase = PyLong_AsSsize_t(args[3]);
    Py_ssize_t event = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (phase >= 0 && event >= 0 && event < events && phase * events + event < PyList_GET_SIZE(args[0])) {
        PyObject *after = PyList_GET_ITEM(args[0], phase * events + event);
        if (!(PyLong_Check(after) && PyLong_AsLong(after) == -1)) {
            return Py_NewRef(after);
        }
    }
    return PyObject_Vectorcall(args[2], args + 3, 2, NULL);
}

static PyMethodDef methods[] = {
    {"split_plain", split_plain, METH_O,
     "split_plain(data): (head, method, target, version, fields, end) of a plain head; None "
     "for any other."},
    {"relayable", (PyCFunction)(void (*)(void))relayable, METH_FASTCALL,
     "relayable(head, names): whether a response head has no hop-by-hop header but "
     "Connection: keep-alive."},
    {"head_of", head_of, METH_O,
     "head_of(data): the head at the start of data, without its blank line; None without one."},
    {"forward_raw", (PyCFunction)(void (*)(void))forward_raw, METH_FASTCALL,
     "forward_raw(chunk, forwarded, trace): the client's head as received, then our lines."},
    {"whole_response", (PyCFunction)(void (*)(void))whole_response, METH_FASTCALL,
     "whole_response(data, names, max_head): the status of a read that is one whole, plain "
     "answer; 0 for any other."},
    {"escaped", escaped, METH_O,
     "escaped(text): text for inside a quoted access-log field; b'-' when empty."},
    {"step", (PyCFunction)(void (*)(void))step, METH_FASTCALL,
     "step(table, events, illegal, phase, event): a life-cycle transition (lifecycle.py)."},
    {"compose", (PyCFunction)(void (*)(void))compose, METH_FASTCALL,
     "compose(clock, source, ...): an access-log line from its runs and per-request fields."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "microforum.lb._speedups",
    "Per-request helpers of the load balancer, in C (see _speedups.c).", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    fill_classes();
    return PyModule_Create(&speedups_module);
}
