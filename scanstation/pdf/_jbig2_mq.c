/* The inner loop of scanstation.pdf.jbig2: a 1-bit image coded as a JBIG2 generic region (ITU-T T.88 6.2,
 * template 0 with its nominal adaptive pixels, typical prediction TPGDON) by the MQ arithmetic coder of annex
 * E.2.  Compiled ahead of time, not by a JIT: the station's service runs under MemoryDenyWriteExecute, where no
 * code can be generated at run time.  Python builds the segment headers; this returns the coded data.
 *
 *   code(pixels, height, width) -> bytes, or None if the code would outgrow the image's raw bits
 *
 * pixels: height*width bytes, 0 (white) or 1 (black), row by row.  The GIL is released while it codes. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* T.88 table E.1: Qe, next state after an MPS, after an LPS, and whether an LPS switches the MPS' sense. */
static const uint16_t QE[47] = {
    0x5601, 0x3401, 0x1801, 0x0AC1, 0x0521, 0x0221, 0x5601, 0x5401, 0x4801, 0x3801, 0x3001, 0x2401,
    0x1C01, 0x1601, 0x5601, 0x5401, 0x5101, 0x4801, 0x3801, 0x3401, 0x3001, 0x2801, 0x2401, 0x2201,
    0x1C01, 0x1801, 0x1601, 0x1401, 0x1201, 0x1101, 0x0AC1, 0x09C1, 0x08A1, 0x0521, 0x0441, 0x02A1,
    0x0221, 0x0141, 0x0111, 0x0085, 0x0049, 0x0025, 0x0015, 0x0009, 0x0005, 0x0001, 0x5601};
static const uint8_t NMPS[47] = {
    1, 2, 3, 4, 5, 38, 7, 8, 9, 10, 11, 12, 13, 29, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
    25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 45, 46};
static const uint8_t NLPS[47] = {
    1, 6, 9, 12, 29, 33, 6, 14, 14, 14, 17, 18, 20, 21, 14, 14, 15, 16, 17, 18, 19, 19, 20, 21,
    22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 46};
static const uint8_t SWITCH[47] = {1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};

#define TPGDON_CONTEXT 0x9B25u /* the context of the "row as the one above" bit, template 0 (T.88 6.2.5.7) */

typedef struct {
    uint32_t a, c;
    int ct;
    Py_ssize_t bp; /* out[bp] is the byte B; -1 is the virtual byte before the data */
    uint8_t *out;
    Py_ssize_t cap;
    int overflow;
    uint8_t state[65536], mps[65536];
} coder;

static void byteout(coder *e) /* E.2.6 BYTEOUT */
{
    if (e->bp + 3 >= e->cap) { /* the code has outgrown its buffer: stop writing; the caller gives up */
        e->overflow = 1;
        e->ct = 8;
        e->c &= 0x7FFFF;
        return;
    }
    uint8_t b = e->bp >= 0 ? e->out[e->bp] : 0;
    if (b == 0xFF) {
        e->out[++e->bp] = (uint8_t)(e->c >> 20);
        e->c &= 0xFFFFF;
        e->ct = 7;
        return;
    }
    if (e->c < 0x8000000) {
        e->out[++e->bp] = (uint8_t)(e->c >> 19);
        e->c &= 0x7FFFF;
        e->ct = 8;
        return;
    }
    b++; /* the carry into the byte already out */
    if (e->bp >= 0)
        e->out[e->bp] = b;
    if (b == 0xFF) {
        e->c &= 0x7FFFFFF;
        e->out[++e->bp] = (uint8_t)(e->c >> 20);
        e->c &= 0xFFFFF;
        e->ct = 7;
    } else {
        e->out[++e->bp] = (uint8_t)(e->c >> 19);
        e->c &= 0x7FFFF;
        e->ct = 8;
    }
}

static inline void encode(coder *e, uint32_t cx, int d) /* E.2.2 ENCODE, with CODEMPS / CODELPS / RENORME */
{
    int i = e->state[cx];
    uint32_t q = QE[i];
    e->a -= q;
    if (d == e->mps[cx]) {
        if (e->a & 0x8000) {
            e->c += q;
            return;
        }
        if (e->a < q)
            e->a = q;
        else
            e->c += q;
        e->state[cx] = NMPS[i];
    } else {
        if (e->a < q)
            e->c += q;
        else
            e->a = q;
        if (SWITCH[i])
            e->mps[cx] ^= 1;
        e->state[cx] = NLPS[i];
    }
    do {
        e->a <<= 1;
        e->c <<= 1;
        if (--e->ct == 0)
            byteout(e);
    } while (!(e->a & 0x8000));
}

static void flush(coder *e) /* E.2.9 FLUSH (SETBITS, two bytes out), then the 0xFF 0xAC end marker */
{
    uint32_t temp = e->c + e->a;
    e->c |= 0xFFFF;
    if (e->c >= temp)
        e->c -= 0x8000;
    e->c <<= e->ct;
    byteout(e);
    e->c <<= e->ct;
    byteout(e);
    if (e->overflow)
        return;
    if (e->bp < 0 || e->out[e->bp] != 0xFF)
        e->out[++e->bp] = 0xFF;
    e->out[++e->bp] = 0xAC;
}

/* Rows are copied into zero-padded buffers (4 pixels each side) so the context needs no bounds checks. */
static void code_rows(coder *e, const uint8_t *px, Py_ssize_t h, Py_ssize_t w, uint8_t *rows)
{
    Py_ssize_t wp = w + 8;
    uint8_t *r2 = rows, *r1 = rows + wp, *r0 = rows + 2 * wp; /* two rows above, one above, this one */
    int ltp = 0;
    for (Py_ssize_t y = 0; y < h && !e->overflow; y++) {
        memcpy(r0 + 4, px + y * w, (size_t)w);
        int typical = memcmp(r0 + 4, r1 + 4, (size_t)w) == 0;
        encode(e, TPGDON_CONTEXT, typical ^ ltp);
        ltp = typical;
        if (!typical) {
            /* The context slides along the row: c0 holds this row's last 4 pixels, c1 the row above's 7
             * around x, c2 the row above that's 5; bits in the order of T.88 figure 3 as decoders build it. */
            uint32_t c0 = 0;
            uint32_t c1 = ((uint32_t)r1[4] << 2) | ((uint32_t)r1[5] << 1) | r1[6];
            uint32_t c2 = ((uint32_t)r2[4] << 1) | r2[5];
            for (Py_ssize_t x = 4; x < w + 4; x++) {
                c1 = ((c1 << 1) | r1[x + 3]) & 0x7F;
                c2 = ((c2 << 1) | r2[x + 2]) & 0x1F;
                int d = r0[x];
                encode(e, c0 | (c1 << 4) | (c2 << 11), d);
                c0 = ((c0 << 1) | (uint32_t)d) & 0xF;
            }
        }
        uint8_t *t = r2; /* rotate: this row becomes the one above */
        r2 = r1;
        r1 = r0;
        r0 = t;
    }
    if (!e->overflow)
        flush(e);
}

static PyObject *code(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t h, w;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nn", &buf, &h, &w))
        return NULL;
    if (h <= 0 || w <= 0 || buf.len != h * w) {
        PyBuffer_Release(&buf);
        PyErr_Format(PyExc_ValueError, "code: %zd bytes for a %zdx%zd image", buf.len, w, h);
        return NULL;
    }
    /* The raw bits of the image, plus slack for a tiny one: a code larger than that is not worth storing. */
    Py_ssize_t cap = h * ((w + 7) / 8) + 4096;
    coder *e = calloc(1, sizeof(coder));
    uint8_t *out = malloc((size_t)cap);
    uint8_t *rows = calloc(3, (size_t)(w + 8));
    if (!e || !out || !rows) {
        free(e);
        free(out);
        free(rows);
        PyBuffer_Release(&buf);
        return PyErr_NoMemory();
    }
    e->a = 0x8000; /* E.2.8 INITENC */
    e->c = 0;
    e->ct = 12;
    e->bp = -1;
    e->out = out;
    e->cap = cap;
    Py_BEGIN_ALLOW_THREADS
    code_rows(e, (const uint8_t *)buf.buf, h, w, rows);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    PyObject *result;
    if (e->overflow) {
        result = Py_NewRef(Py_None);
    } else {
        result = PyBytes_FromStringAndSize((const char *)out, e->bp + 1);
    }
    free(e);
    free(out);
    free(rows);
    return result;
}

static PyMethodDef methods[] = {
    {"code", code, METH_VARARGS,
     "code(pixels, height, width) -> bytes | None: the MQ-coded data of a template-0 JBIG2 generic region with "
     "TPGDON; None if it would be larger than the raw bits."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_jbig2_mq",
    .m_doc = "JBIG2 generic region coding (see scanstation/pdf/jbig2.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__jbig2_mq(void) { return PyModule_Create(&module); }
