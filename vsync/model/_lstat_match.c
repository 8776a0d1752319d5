/* vsync.model._lstat_match: the per-file lstat loops of the folder walks, in C.
 *
 * matches(folder, names, where, records, record_size) -> bool
 *
 * For each i, lstat(folder/names[i]) (fstatat on one descriptor of the folder,
 * AT_SYMLINK_NOFOLLOW) and compare its size, mtime and ctime in nanoseconds,
 * inode and mode with the stat cache record number where[i] of ``records``
 * (docs/format.md, "The stat cache": each record begins with the key
 * <QqqQI: size, mtime_ns, ctime_ns, ino, mode). True if every file matches;
 * False at the first that differs or cannot be looked at (the caller then takes
 * the full path, which reports it). Nothing is allocated per file: this loop is
 * what a clean status costs on a large folder. The pure-Python reference is
 * vsync.model.clean_walk._matches_py; tests run both.
 *
 * lstat_keys(folder, names) -> list[tuple[int, int, int, int, int] | None]
 *
 * (size, mtime_ns, ctime_ns, ino, mode) of each folder/names[i] (fstatat,
 * AT_SYMLINK_NOFOLLOW), None for a name that is gone (ENOENT); OSError for
 * any other failure, and for the folder itself. What commit's walk
 * (vsync.model.folder_tree) needs of each file, without an os.stat_result
 * (nineteen fields, float times) per file. Reference: folder_tree._lstat_keys_py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_SIZE 36 /* struct.calcsize("<QqqQI") */

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static int same_key(const struct stat *st, const unsigned char *rec) {
    int64_t mtime = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    int64_t ctime = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
    return le64(rec) == (uint64_t)st->st_size && (int64_t)le64(rec + 8) == mtime &&
           (int64_t)le64(rec + 16) == ctime && le64(rec + 24) == (uint64_t)st->st_ino &&
           le32(rec + 32) == (uint32_t)st->st_mode;
}

/* A list of names as C strings, for a loop without the GIL: a tuple copy of the list
 * (holding the str objects alive), pointers into them (ASCII) or into bytes objects
 * made here for the others. */
typedef struct {
    PyObject *names;
    PyObject **encoded;
    const char **paths;
    Py_ssize_t count;
} CNames;

static void cnames_free(CNames *c) {
    if (c->encoded != NULL)
        for (Py_ssize_t i = 0; i < c->count; i++)
            Py_XDECREF(c->encoded[i]);
    PyMem_Free(c->encoded);
    PyMem_Free(c->paths);
    Py_XDECREF(c->names);
}

static int cnames_init(CNames *c, PyObject *list) {
    memset(c, 0, sizeof(*c));
    c->names = PySequence_Tuple(list);
    if (c->names == NULL)
        return -1;
    c->count = PyTuple_GET_SIZE(c->names);
    c->encoded = PyMem_Calloc(c->count ? c->count : 1, sizeof(PyObject *));
    c->paths = PyMem_Calloc(c->count ? c->count : 1, sizeof(char *));
    if (c->encoded == NULL || c->paths == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < c->count; i++) {
        PyObject *name = PyTuple_GET_ITEM(c->names, i);
        if (!PyUnicode_Check(name)) {
            PyErr_SetString(PyExc_ValueError, "a name that is not a str");
            return -1;
        }
        Py_ssize_t length;
        if (PyUnicode_IS_ASCII(name)) {
            c->paths[i] = (const char *)PyUnicode_DATA(name);
            length = PyUnicode_GET_LENGTH(name);
        } else {
            c->encoded[i] = PyUnicode_EncodeFSDefault(name);
            if (c->encoded[i] == NULL)
                return -1;
            c->paths[i] = PyBytes_AS_STRING(c->encoded[i]);
            length = PyBytes_GET_SIZE(c->encoded[i]);
        }
        if (length == 0 || (Py_ssize_t)strlen(c->paths[i]) != length) {
            PyErr_SetString(PyExc_ValueError, "an empty name or one with a NUL in it");
            return -1;
        }
    }
    return 0;
}

static PyObject *matches(PyObject *self, PyObject *args) {
    PyObject *folder_obj, *names_arg, *where;
    Py_buffer records;
    Py_ssize_t record_size;
    if (!PyArg_ParseTuple(args, "O&O!O!y*n", PyUnicode_FSConverter, &folder_obj, &PyList_Type,
                          &names_arg, &PyList_Type, &where, &records, &record_size))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t *offsets = NULL;
    CNames c;
    /* With the GIL: every name as bytes the OS takes, every record checked in range. */
    if (cnames_init(&c, names_arg) < 0)
        goto done;
    if (PyList_GET_SIZE(where) != c.count || record_size < KEY_SIZE) {
        PyErr_SetString(PyExc_ValueError, "names and where differ in length, or bad record size");
        goto done;
    }
    Py_ssize_t nrecords = records.len / record_size;
    offsets = PyMem_Calloc(c.count ? c.count : 1, sizeof(Py_ssize_t));
    if (offsets == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < c.count; i++) {
        Py_ssize_t at = PyLong_AsSsize_t(PyList_GET_ITEM(where, i));
        if (at == -1 && PyErr_Occurred())
            goto done;
        if (at < 0 || at >= nrecords) {
            PyErr_SetString(PyExc_ValueError, "a record out of range");
            goto done;
        }
        offsets[i] = at * record_size;
    }
    /* Without it: the system calls, so another thread can walk meanwhile. */
    const unsigned char *base = records.buf;
    const char *folder = PyBytes_AS_STRING(folder_obj);
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    int dirfd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        ok = 0;
    struct stat st;
    for (Py_ssize_t i = 0; i < c.count && ok; i++) {
        if (fstatat(dirfd, c.paths[i], &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !same_key(&st, base + offsets[i]))
            ok = 0;
    }
    if (dirfd >= 0)
        close(dirfd);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(ok ? Py_True : Py_False);
done:
    cnames_free(&c);
    PyMem_Free(offsets);
    Py_DECREF(folder_obj);
    PyBuffer_Release(&records);
    return result;
}

static PyObject *lstat_keys(PyObject *self, PyObject *args) {
    PyObject *folder_obj, *names_arg;
    if (!PyArg_ParseTuple(args, "O&O!", PyUnicode_FSConverter, &folder_obj, &PyList_Type,
                          &names_arg))
        return NULL;
    PyObject *result = NULL;
    struct stat *stats = NULL;
    int *errs = NULL;
    CNames c;
    if (cnames_init(&c, names_arg) < 0)
        goto done;
    stats = PyMem_Calloc(c.count ? c.count : 1, sizeof(struct stat));
    errs = PyMem_Calloc(c.count ? c.count : 1, sizeof(int));
    if (stats == NULL || errs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const char *folder = PyBytes_AS_STRING(folder_obj);
    int dirfd, folder_err = 0;
    Py_BEGIN_ALLOW_THREADS
    dirfd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        folder_err = errno;
    } else {
        for (Py_ssize_t i = 0; i < c.count; i++)
            if (fstatat(dirfd, c.paths[i], &stats[i], AT_SYMLINK_NOFOLLOW) != 0)
                errs[i] = errno;
        close(dirfd);
    }
    Py_END_ALLOW_THREADS
    if (folder_err) {
        errno = folder_err;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, folder_obj);
        goto done;
    }
    result = PyList_New(c.count);
    if (result == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < c.count; i++) {
        PyObject *item;
        if (errs[i] == ENOENT) {
            item = Py_NewRef(Py_None);
        } else if (errs[i]) {
            errno = errs[i];
            PyObject *dir = PyUnicode_DecodeFSDefault(folder);
            PyObject *path =
                dir ? PyUnicode_FromFormat("%U/%U", dir, PyTuple_GET_ITEM(c.names, i)) : NULL;
            Py_XDECREF(dir);
            if (path != NULL) {
                PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
                Py_DECREF(path);
            }
            Py_CLEAR(result);
            goto done;
        } else {
            const struct stat *st = &stats[i];
            item = Py_BuildValue(
                "(KLLKI)", (unsigned long long)st->st_size,
                (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec,
                (long long)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec,
                (unsigned long long)st->st_ino, (unsigned int)st->st_mode);
            if (item == NULL) {
                Py_CLEAR(result);
                goto done;
            }
        }
        PyList_SET_ITEM(result, i, item);
    }
done:
    cnames_free(&c);
    PyMem_Free(stats);
    PyMem_Free(errs);
    Py_DECREF(folder_obj);
    return result;
}

static PyMethodDef methods[] = {
    {"matches", matches, METH_VARARGS,
     "matches(folder, names, where, records, record_size) -> bool: every file's lstat "
     "equals its stat cache record"},
    {"lstat_keys", lstat_keys, METH_VARARGS,
     "lstat_keys(folder, names) -> [(size, mtime_ns, ctime_ns, ino, mode) or None]"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vsync.model._lstat_match",
    "The clean-status walk's per-file lstat comparison, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__lstat_match(void) { return PyModule_Create(&module); }
