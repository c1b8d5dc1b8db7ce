/* A Scan response body's Items, read into per-(attribute, type tag) column buffers in C,
   without making a Python object per value: the accelerator of `wire_decode.decode_scan`.

   Why our own C: within a copy the Python decoder (orjson's parse, the release of the
   objects it made, the columns) took about half of the workers' busy time, ~3x what it
   costs on a page decoded alone, and kept the copy's rate against a co-located fast target
   below pre-built requests' (docs/design.md, Data plane). No library reads DynamoDB JSON
   into Arrow: pyarrow's JSON reader parses only a little faster than orjson and still
   leaves the B and M conversions to Python.

   It takes only the plain case and says None for anything else, and the caller then
   decodes the body in Python, which is the reference (and raises the proper errors):
   - strings (names, type tags, S, N, SS and NS members) of ASCII without escapes;
   - B as standard padded base64; BS not at all;
   - M and L written canonically here (keys sorted, compact) when every string in them
     is plain, holds no number token and no "B"/"BS" key; otherwise their text is kept
     as sent and flagged, for Python to canonicalise (see `canonical` below);
   - at most 64 levels of JSON nesting, columns below 2 GiB of text, a name once an item.
   What it reads itself it checks to be JSON; a flagged M/L text and the response's
   members other than Items it only skips, and orjson parses them afterwards. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct { char *p; Py_ssize_t len, cap; } Buf;
static int bput(Buf *b, const void *s, Py_ssize_t n) {
    if (n == 0) return 0;  /* nothing to copy, and b->p may not exist yet */
    if (b->len + n > b->cap) {
        Py_ssize_t c = b->cap ? b->cap * 2 : 4096;
        while (c < b->len + n) c *= 2;
        char *q = realloc(b->p, c); if (!q) return -1; b->p = q; b->cap = c;
    }
    memcpy(b->p + b->len, s, n); b->len += n; return 0;
}
static int bput32(Buf *b, int32_t v) { return bput(b, &v, 4); }
static int bput8(Buf *b, uint8_t v) { return bput(b, &v, 1); }

enum { T_S, T_N, T_B, T_BOOL, T_NULL, T_SS, T_NS, T_BS, T_M, T_L, NTAGS };
static const char *TAGN[NTAGS] = {"S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "M", "L"};

typedef struct { int used; Py_ssize_t filled; Buf valid, offs, data, voffs; int canon; } Child;
typedef struct { const char *name; Py_ssize_t nlen; Py_ssize_t last_row; Child ch[NTAGS]; } Column;
typedef struct { Column *cols; int ncols, cap; } State;

typedef struct { const char *p, *end; } Cur;
static void ws(Cur *c) { while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) c->p++; }
/* A plain string: ASCII, no escapes, no control characters. */
static int plain_string(Cur *c, const char **s, Py_ssize_t *n) {
    if (c->p >= c->end || *c->p != '"') return -1;
    const char *q = ++c->p;
    while (q < c->end) {
        unsigned char ch = (unsigned char)*q;
        if (ch == '"') break;
        if (ch == '\\' || ch >= 0x80 || ch < 0x20) return -1;
        q++;
    }
    if (q >= c->end) return -1;
    *s = c->p; *n = q - c->p; c->p = q + 1; return 0;
}
/* Any JSON value, skipped (checked as JSON, except that a string's escapes and bytes
   are not: the text is then parsed by orjson in Python). */
static int skip_value(Cur *c, int depth) {
    if (depth > 64 || c->p >= c->end) return -1;
    char ch = *c->p;
    if (ch == '"') {
        const char *q = c->p + 1;
        while (q < c->end && *q != '"') {
            if ((unsigned char)*q < 0x20) return -1;
            q += *q == '\\' ? 2 : 1;
        }
        if (q >= c->end) return -1;
        c->p = q + 1; return 0;
    }
    if (ch == '{' || ch == '[') {
        int obj = ch == '{';
        char close = obj ? '}' : ']';
        c->p++; ws(c);
        if (c->p < c->end && *c->p == close) { c->p++; return 0; }
        for (;;) {
            if (obj) {
                if (c->p >= c->end || *c->p != '"' || skip_value(c, depth + 1) < 0) return -1;
                ws(c);
                if (c->p >= c->end || *c->p != ':') return -1;
                c->p++; ws(c);
            }
            if (skip_value(c, depth + 1) < 0) return -1;
            ws(c);
            if (c->p >= c->end) return -1;
            if (*c->p == ',') { c->p++; ws(c); continue; }
            if (*c->p == close) { c->p++; return 0; }
            return -1;
        }
    }
    if (c->end - c->p >= 4 && !memcmp(c->p, "true", 4)) { c->p += 4; return 0; }
    if (c->end - c->p >= 5 && !memcmp(c->p, "false", 5)) { c->p += 5; return 0; }
    if (c->end - c->p >= 4 && !memcmp(c->p, "null", 4)) { c->p += 4; return 0; }
    const char *q = c->p;  /* a number: its exact form is orjson's to check */
    while (q < c->end && ((*q >= '0' && *q <= '9') || *q == '-' || *q == '+' || *q == '.' || *q == 'e' || *q == 'E')) q++;
    if (q == c->p) return -1;
    c->p = q; return 0;
}

typedef struct { const char *k; Py_ssize_t kn; Py_ssize_t off, len; } Member;
static int member_cmp(const void *a, const void *b) {
    const Member *x = a, *y = b; Py_ssize_t m = x->kn < y->kn ? x->kn : y->kn;
    int r = memcmp(x->k, y->k, m); return r ? r : (x->kn > y->kn) - (x->kn < y->kn);
}
/* The canonical text of a nested value (sorted keys, compact) into out: 0, or -2 where
   only the Python path can say it (escapes, non-ASCII, numbers, binary), -1 bad JSON. */
static int canon_value(Cur *c, Buf *out, int depth) {
    if (depth > 64 || c->p >= c->end) return -1;
    char ch = *c->p;
    if (ch == '"') {
        const char *s; Py_ssize_t n;
        if (plain_string(c, &s, &n) < 0) return -2;
        return bput8(out, '"') < 0 || bput(out, s, n) < 0 || bput8(out, '"') < 0 ? -1 : 0;
    }
    if (ch == '[') {
        c->p++; ws(c);
        if (bput8(out, '[') < 0) return -1;
        if (c->p < c->end && *c->p == ']') { c->p++; return bput8(out, ']'); }
        for (int first = 1;; first = 0) {
            if (!first && bput8(out, ',') < 0) return -1;
            int r = canon_value(c, out, depth + 1); if (r) return r;
            ws(c);
            if (c->p < c->end && *c->p == ',') { c->p++; ws(c); continue; }
            if (c->p < c->end && *c->p == ']') { c->p++; return bput8(out, ']'); }
            return -1;
        }
    }
    if (ch == '{') {
        Buf tmp = {0}; Member *ms = NULL; Py_ssize_t nm = 0, cap = 0; int r = 0;
        c->p++; ws(c);
        if (c->p < c->end && *c->p == '}') { c->p++; return bput(out, "{}", 2); }
        for (;;) {
            const char *k; Py_ssize_t kn;
            if (plain_string(c, &k, &kn) < 0) { r = -2; break; }
            if ((kn == 1 && k[0] == 'B') || (kn == 2 && k[0] == 'B' && k[1] == 'S')) { r = -2; break; }
            ws(c);
            if (c->p >= c->end || *c->p != ':') { r = -1; break; }
            c->p++; ws(c);
            Py_ssize_t off = tmp.len;
            if ((r = canon_value(c, &tmp, depth + 1))) break;
            if (nm == cap) { cap = cap ? cap * 2 : 8; Member *q = realloc(ms, cap * sizeof *ms); if (!q) { r = -1; break; } ms = q; }
            ms[nm++] = (Member){k, kn, off, tmp.len - off};
            ws(c);
            if (c->p < c->end && *c->p == ',') { c->p++; ws(c); continue; }
            if (c->p < c->end && *c->p == '}') { c->p++; break; }
            r = -1; break;
        }
        if (!r) {
            qsort(ms, nm, sizeof *ms, member_cmp);
            for (Py_ssize_t i = 1; i < nm; i++) if (!member_cmp(&ms[i - 1], &ms[i])) r = -2;  /* a key twice */
        }
        if (!r) {
            r = bput8(out, '{');
            for (Py_ssize_t i = 0; !r && i < nm; i++)
                r = (i && bput8(out, ',') < 0) || bput8(out, '"') < 0 || bput(out, ms[i].k, ms[i].kn) < 0 ||
                    bput(out, "\":", 2) < 0 || bput(out, tmp.p + ms[i].off, ms[i].len) < 0 ? -1 : 0;
            if (!r) r = bput8(out, '}');
        }
        free(tmp.p); free(ms);
        return r;
    }
    if (c->end - c->p >= 4 && !memcmp(c->p, "true", 4)) { c->p += 4; return bput(out, "true", 4); }
    if (c->end - c->p >= 5 && !memcmp(c->p, "false", 5)) { c->p += 5; return bput(out, "false", 5); }
    if (c->end - c->p >= 4 && !memcmp(c->p, "null", 4)) { c->p += 4; return bput(out, "null", 4); }
    return -2;
}

static signed char b64tab[256];  /* each base64 character's value, -1 for any other byte */
static int b64decode(const char *s, Py_ssize_t n, Buf *out) {
    if (n % 4) return -1;
    for (Py_ssize_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            unsigned char ch = (unsigned char)s[i + j];
            if (ch == '=') { if (i + 4 != n || j < 2) return -1; pad++; v[j] = 0; continue; }
            if (pad) return -1;
            if (b64tab[ch] < 0) return -1;
            v[j] = b64tab[ch];
        }
        uint8_t o[3] = {(uint8_t)(v[0] << 2 | v[1] >> 4), (uint8_t)(v[1] << 4 | v[2] >> 2), (uint8_t)(v[2] << 6 | v[3])};
        if (bput(out, o, 3 - pad) < 0) return -1;
    }
    return 0;
}

static int is_list(int t) { return t == T_SS || t == T_NS || t == T_BS; }
static int is_bool(int t) { return t == T_BOOL || t == T_NULL; }
/* Null slots up to row r (exclusive). */
static int pad(Child *ch, int tag, Py_ssize_t r) {
    while (ch->filled < r) {
        if (bput8(&ch->valid, 0) < 0) return -1;
        if (is_bool(tag)) { if (bput8(&ch->data, 0) < 0) return -1; }
        else if (bput32(&ch->offs, (int32_t)(is_list(tag) ? (ch->voffs.len / 4 - 1) : ch->data.len)) < 0) return -1;
        ch->filled++;
    }
    return 0;
}
static int child_init(Child *ch, int tag) {
    memset(ch, 0, sizeof *ch); ch->used = 1; ch->canon = 1;
    if (!is_bool(tag) && bput32(&ch->offs, 0) < 0) return -1;
    if (is_list(tag) && bput32(&ch->voffs, 0) < 0) return -1;
    return 0;
}

static int item_value(Cur *c, Child *ch, int tag) {
    const char *s; Py_ssize_t n;
    switch (tag) {
    case T_S: case T_N:
        if (plain_string(c, &s, &n) < 0 || bput(&ch->data, s, n) < 0) return -1;
        if (ch->data.len > INT32_MAX) return -1;
        return bput32(&ch->offs, (int32_t)ch->data.len);
    case T_B:
        if (plain_string(c, &s, &n) < 0 || b64decode(s, n, &ch->data) < 0) return -1;
        if (ch->data.len > INT32_MAX) return -1;
        return bput32(&ch->offs, (int32_t)ch->data.len);
    case T_BOOL: case T_NULL:
        if (c->end - c->p >= 4 && !memcmp(c->p, "true", 4)) { c->p += 4; return bput8(&ch->data, 1); }
        if (c->end - c->p >= 5 && !memcmp(c->p, "false", 5)) { c->p += 5; return bput8(&ch->data, 0); }
        return -1;
    case T_SS: case T_NS:
        if (c->p >= c->end || *c->p != '[') return -1;
        c->p++; ws(c);
        if (c->p < c->end && *c->p == ']') c->p++;
        else for (;;) {
            if (plain_string(c, &s, &n) < 0 || bput(&ch->data, s, n) < 0) return -1;
            if (ch->data.len > INT32_MAX || bput32(&ch->voffs, (int32_t)ch->data.len) < 0) return -1;
            ws(c);
            if (c->p < c->end && *c->p == ',') { c->p++; ws(c); continue; }
            if (c->p < c->end && *c->p == ']') { c->p++; break; }
            return -1;
        }
        return bput32(&ch->offs, (int32_t)(ch->voffs.len / 4 - 1));
    case T_M: case T_L: {
        if (c->p >= c->end || *c->p != (tag == T_M ? '{' : '[')) return -1;
        const char *start = c->p;
        Py_ssize_t mark = ch->data.len;
        int r = ch->canon ? canon_value(c, &ch->data, 0) : -2;
        if (r == -1) return -1;
        if (r == -2) {  /* its text as sent; the column is canonicalised in Python */
            ch->canon = 0; ch->data.len = mark; c->p = start;
            if (skip_value(c, 0) < 0) return -1;
            if (bput(&ch->data, start, c->p - start) < 0) return -1;
        }
        if (ch->data.len > INT32_MAX) return -1;
        return bput32(&ch->offs, (int32_t)ch->data.len);
    }
    }
    return -1;  /* BS: not on the fast path */
}

static int parse_items(Cur *c, State *st, Py_ssize_t *nrows) {
    Py_ssize_t row = 0;
    if (c->p >= c->end || *c->p != '[') return -1;
    c->p++; ws(c);
    if (c->p < c->end && *c->p == ']') { c->p++; *nrows = 0; return 0; }
    for (;;) {
        if (c->p >= c->end || *c->p != '{') return -1;
        c->p++; ws(c);
        int k = 0;  /* the attribute's place in the previous item: a table of one shape hits it */
        if (c->p < c->end && *c->p == '}') c->p++;
        else for (;; k++) {
            const char *name; Py_ssize_t nlen, tlen; const char *tname;
            if (plain_string(c, &name, &nlen) < 0) return -1;
            ws(c);
            if (c->p >= c->end || *c->p != ':') return -1;
            c->p++; ws(c);
            if (c->p >= c->end || *c->p != '{') return -1;
            c->p++; ws(c);
            if (plain_string(c, &tname, &tlen) < 0) return -1;
            int tag = -1;
            for (int t = 0; t < NTAGS; t++) if ((Py_ssize_t)strlen(TAGN[t]) == tlen && !memcmp(TAGN[t], tname, tlen)) tag = t;
            if (tag < 0) return -1;
            ws(c);
            if (c->p >= c->end || *c->p != ':') return -1;
            c->p++; ws(c);
            Column *col = NULL;
            if (k < st->ncols && st->cols[k].nlen == nlen && !memcmp(st->cols[k].name, name, nlen)) col = &st->cols[k];
            else for (int i = 0; i < st->ncols; i++)
                if (st->cols[i].nlen == nlen && !memcmp(st->cols[i].name, name, nlen)) { col = &st->cols[i]; break; }
            if (!col) {
                if (st->ncols == st->cap) {
                    int cap = st->cap ? st->cap * 2 : 16;
                    Column *q = realloc(st->cols, cap * sizeof *q);
                    if (!q) return -1;
                    st->cols = q; st->cap = cap;
                }
                col = &st->cols[st->ncols++];
                memset(col, 0, sizeof *col); col->name = name; col->nlen = nlen; col->last_row = -1;
            }
            if (col->last_row == row) return -1;  /* a name twice in one item */
            col->last_row = row;
            Child *ch = &col->ch[tag];
            if (!ch->used && child_init(ch, tag) < 0) return -1;
            if (pad(ch, tag, row) < 0 || bput8(&ch->valid, 1) < 0) return -1;
            if (item_value(c, ch, tag) < 0) return -1;
            ch->filled = row + 1;
            ws(c);
            if (c->p >= c->end || *c->p != '}') return -1;
            c->p++; ws(c);
            if (c->p < c->end && *c->p == ',') { c->p++; ws(c); continue; }
            if (c->p < c->end && *c->p == '}') { c->p++; break; }
            return -1;
        }
        row++;
        ws(c);
        if (c->p < c->end && *c->p == ',') { c->p++; ws(c); continue; }
        if (c->p < c->end && *c->p == ']') { c->p++; break; }
        return -1;
    }
    *nrows = row; return 0;
}

static void free_state(State *st) {
    for (int i = 0; i < st->ncols; i++) for (int t = 0; t < NTAGS; t++) {
        Child *ch = &st->cols[i].ch[t];
        free(ch->valid.p); free(ch->offs.p); free(ch->data.p); free(ch->voffs.p);
    }
    free(st->cols);
}
static PyObject *bytes_of(Buf *b) { return PyBytes_FromStringAndSize(b->p ? b->p : "", b->len); }

/* scan_columns(body) -> None, or (rows, items_start, items_end, children): the Items array
   spans body[items_start:items_end]; a child is (name, tag, canonical, valid, offsets,
   data, value_offsets): one byte a row (1: the row holds the attribute with this tag),
   Arrow's int32 offsets and data (BOOL and NULL: a byte a row in data), for SS/NS the
   list offsets in `offsets` and the members' in `value_offsets`; `canonical` 0 for an M
   or L child whose texts must be canonicalised in Python. */
static PyObject *scan_columns(PyObject *self, PyObject *arg) {
    char *body; Py_ssize_t blen;
    if (PyBytes_AsStringAndSize(arg, &body, &blen) < 0) return NULL;
    State stv = {0}, *st = &stv;
    PyObject *result = NULL;
    Cur c = {body, body + blen};
    Py_ssize_t rows = 0, istart = -1, iend = -1;
    int ok = 0;
    Py_BEGIN_ALLOW_THREADS
    ws(&c);
    if (c.p < c.end && *c.p == '{') {
        c.p++; ws(&c);
        ok = 1;
        if (c.p < c.end && *c.p == '}') c.p++;
        else for (;;) {
            const char *k; Py_ssize_t kn;
            if (plain_string(&c, &k, &kn) < 0) { ok = 0; break; }
            ws(&c);
            if (c.p >= c.end || *c.p != ':') { ok = 0; break; }
            c.p++; ws(&c);
            if (kn == 5 && !memcmp(k, "Items", 5)) {
                if (istart >= 0) { ok = 0; break; }
                istart = c.p - body;
                if (parse_items(&c, st, &rows) < 0) { ok = 0; break; }
                iend = c.p - body;
            } else if (skip_value(&c, 0) < 0) { ok = 0; break; }
            ws(&c);
            if (c.p < c.end && *c.p == ',') { c.p++; ws(&c); continue; }
            if (c.p < c.end && *c.p == '}') { c.p++; break; }
            ok = 0; break;
        }
        ws(&c);
        if (c.p != c.end) ok = 0;
    }
    if (ok) for (int i = 0; i < st->ncols; i++) for (int t = 0; t < NTAGS; t++) {
        Child *ch = &st->cols[i].ch[t];
        if (ch->used && pad(ch, t, rows) < 0) ok = 0;
    }
    Py_END_ALLOW_THREADS
    if (!ok) { free_state(st); Py_RETURN_NONE; }
    PyObject *cols = PyList_New(0);
    for (int i = 0; cols && i < st->ncols; i++) for (int t = 0; t < NTAGS; t++) {
        Child *ch = &st->cols[i].ch[t];
        if (!ch->used) continue;
        PyObject *valid = bytes_of(&ch->valid), *offs = bytes_of(&ch->offs), *data = bytes_of(&ch->data),
                 *voffs = bytes_of(&ch->voffs), *tup = NULL;
        if (valid && offs && data && voffs)
            tup = Py_BuildValue("(y#siOOOO)", st->cols[i].name, st->cols[i].nlen, TAGN[t], ch->canon,
                                valid, offs, data, voffs);
        Py_XDECREF(valid); Py_XDECREF(offs); Py_XDECREF(data); Py_XDECREF(voffs);
        if (!tup || PyList_Append(cols, tup) < 0) { Py_XDECREF(tup); Py_CLEAR(cols); break; }
        Py_DECREF(tup);
    }
    if (cols) result = Py_BuildValue("(nnnN)", rows, istart, iend, cols);
    free_state(st);
    return result;
}

static PyMethodDef methods[] = {{"scan_columns", scan_columns, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_scan_columns", NULL, -1, methods};
PyMODINIT_FUNC PyInit__scan_columns(void) {
    const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    memset(b64tab, -1, sizeof b64tab);
    for (int i = 0; i < 64; i++) b64tab[(unsigned char)a[i]] = (signed char)i;
    return PyModule_Create(&mod);
}
