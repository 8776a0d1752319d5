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
 * list_folders(folders, entry_limit) -> list[(names, keys) | OSError | None]
 *
 * For each folder: its names as os.listdir gives them, and each name's
 * (size, mtime_ns, ctime_ns, ino, mode) (fstatat, AT_SYMLINK_NOFOLLOW; None
 * for a name gone since the folder was read): what commit's walk
 * (vsync.model.folder_tree) needs of each file, without an os.stat_result
 * (nineteen fields, float times) per file. Several folders in one call, on up
 * to four threads of its own (none holds the GIL): the walk lists the folders
 * it will come to next in one go, so that the system calls of a large tree run
 * on every core, as git's preload-index runs its lstats. An OSError (not raised)
 * where the folder cannot be opened or read, or an entry's lstat fails other than
 * with ENOENT; None for folders not listed because the ones listed already hold
 * entry_limit entries (the first folder is always listed): what the caller holds
 * at once stays bounded. Reference: folder_tree._list_folders_py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

/* -- list_folders ------------------------------------------------------------------- */

typedef struct {
    const char *path; /* the folder, as the OS takes it (owned by a bytes object) */
    int listed;       /* taken by a worker */
    int err;          /* errno of opening or reading the folder; 0: fine */
    int entry_err;    /* errno of an entry's lstat other than ENOENT; 0: none */
    Py_ssize_t bad;   /* ... that entry's index */
    char *names;      /* the entries' names, each NUL-terminated */
    size_t used, room;
    size_t *starts; /* offset of each name in ``names`` */
    Py_ssize_t count, slots;
    struct stat *stats;
    int *errs; /* 0, or the lstat's errno (ENOENT: gone since listed) */
} Listing;

typedef struct {
    Listing *items;
    Py_ssize_t n;
    Py_ssize_t next;    /* the next folder to take (atomic) */
    Py_ssize_t entries; /* entries listed so far (atomic) */
    Py_ssize_t limit;
} Work;

static void listing_free(Listing *l) {
    PyMem_RawFree(l->names);
    PyMem_RawFree(l->starts);
    PyMem_RawFree(l->stats);
    PyMem_RawFree(l->errs);
}

/* Without the GIL: readdir and fstatat. Returns 0, or ENOMEM. */
static int list_one(Listing *l) {
    int fd = open(l->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        l->err = errno;
        return 0;
    }
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        l->err = errno;
        close(fd);
        return 0;
    }
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(dir);
        if (e == NULL) {
            l->err = errno; /* 0 at the end */
            break;
        }
        const char *name = e->d_name;
        if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0)))
            continue;
        size_t len = strlen(name) + 1;
        if (l->used + len > l->room) {
            size_t room = l->room ? l->room * 2 : 4096;
            while (room < l->used + len)
                room *= 2;
            char *grown = PyMem_RawRealloc(l->names, room);
            if (grown == NULL)
                goto nomem;
            l->names = grown;
            l->room = room;
        }
        if (l->count == l->slots) {
            Py_ssize_t slots = l->slots ? l->slots * 2 : 64;
            size_t *starts = PyMem_RawRealloc(l->starts, slots * sizeof(size_t));
            if (starts == NULL)
                goto nomem;
            l->starts = starts;
            l->slots = slots;
        }
        memcpy(l->names + l->used, name, len);
        l->starts[l->count++] = l->used;
        l->used += len;
    }
    if (l->err == 0) {
        Py_ssize_t n = l->count ? l->count : 1;
        l->stats = PyMem_RawMalloc(n * sizeof(struct stat));
        l->errs = PyMem_RawCalloc(n, sizeof(int));
        if (l->stats == NULL || l->errs == NULL)
            goto nomem;
        int at = dirfd(dir);
        for (Py_ssize_t i = 0; i < l->count; i++)
            if (fstatat(at, l->names + l->starts[i], &l->stats[i], AT_SYMLINK_NOFOLLOW) != 0) {
                l->errs[i] = errno;
                if (errno != ENOENT && l->entry_err == 0) {
                    l->entry_err = errno;
                    l->bad = i;
                }
            }
    }
    closedir(dir);
    return 0;
nomem:
    closedir(dir);
    return ENOMEM;
}

static void *list_worker(void *arg) {
    Work *w = arg;
    for (;;) {
        if (__atomic_load_n(&w->entries, __ATOMIC_RELAXED) >= w->limit)
            return NULL;
        Py_ssize_t i = __atomic_fetch_add(&w->next, 1, __ATOMIC_RELAXED);
        if (i >= w->n)
            return NULL;
        Listing *l = &w->items[i];
        l->listed = 1;
        if (list_one(l) != 0)
            l->err = ENOMEM;
        __atomic_fetch_add(&w->entries, l->count, __ATOMIC_RELAXED);
    }
}

/* With the GIL: OSError(errno, strerror, path) (its subclass for errno) as an object. */
static PyObject *os_error(int err, PyObject *path) {
    return PyObject_CallFunction(PyExc_OSError, "isO", err, strerror(err), path);
}

static PyObject *listing_result(Listing *l, PyObject *folder) {
    if (l->err)
        return os_error(l->err, folder);
    if (l->entry_err) {
        PyObject *path = PyUnicode_FromFormat("%U/%s", folder, l->names + l->starts[l->bad]);
        PyObject *exc = path ? os_error(l->entry_err, path) : NULL;
        Py_XDECREF(path);
        return exc;
    }
    PyObject *names = PyList_New(l->count), *keys = PyList_New(l->count);
    if (names == NULL || keys == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < l->count; i++) {
        PyObject *name = PyUnicode_DecodeFSDefault(l->names + l->starts[i]);
        if (name == NULL)
            goto fail;
        PyList_SET_ITEM(names, i, name);
        PyObject *key;
        if (l->errs[i]) { /* ENOENT: gone since listed */
            key = Py_NewRef(Py_None);
        } else {
            const struct stat *st = &l->stats[i];
            key = Py_BuildValue(
                "(KLLKI)", (unsigned long long)st->st_size,
                (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec,
                (long long)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec,
                (unsigned long long)st->st_ino, (unsigned int)st->st_mode);
            if (key == NULL)
                goto fail;
        }
        PyList_SET_ITEM(keys, i, key);
    }
    PyObject *pair = PyTuple_Pack(2, names, keys);
    Py_DECREF(names);
    Py_DECREF(keys);
    return pair;
fail:
    Py_XDECREF(names);
    Py_XDECREF(keys);
    return NULL;
}

static PyObject *list_folders(PyObject *self, PyObject *args) {
    PyObject *folders_arg;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "O!n", &PyList_Type, &folders_arg, &limit))
        return NULL;
    PyObject *folders = PySequence_Tuple(folders_arg), *encoded = NULL, *result = NULL;
    if (folders == NULL)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(folders);
    Listing *items = PyMem_RawCalloc(n ? n : 1, sizeof(Listing));
    encoded = PyTuple_New(n);
    if (items == NULL || encoded == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *path = NULL;
        if (!PyUnicode_FSConverter(PyTuple_GET_ITEM(folders, i), &path))
            goto done;
        PyTuple_SET_ITEM(encoded, i, path);
        items[i].path = PyBytes_AS_STRING(path);
    }
    Work work = {items, n, 0, 0, limit > 0 ? limit : 1};
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = cpus < 1 ? 1 : cpus > 4 ? 4 : (int)cpus;
    if (threads > n)
        threads = (int)n;
    pthread_t helpers[3];
    int started = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int t = 1; t < threads; t++)
        if (pthread_create(&helpers[started], NULL, list_worker, &work) == 0)
            started++;
    list_worker(&work);
    for (int t = 0; t < started; t++)
        pthread_join(helpers[t], NULL);
    Py_END_ALLOW_THREADS
    result = PyList_New(n);
    if (result == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = items[i].listed
                             ? listing_result(&items[i], PyTuple_GET_ITEM(folders, i))
                             : Py_NewRef(Py_None);
        if (item == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, item);
    }
done:
    if (items != NULL)
        for (Py_ssize_t i = 0; i < n; i++)
            listing_free(&items[i]);
    PyMem_RawFree(items);
    Py_XDECREF(encoded);
    Py_DECREF(folders);
    return result;
}

static PyMethodDef methods[] = {
    {"matches", matches, METH_VARARGS,
     "matches(folder, names, where, records, record_size) -> bool: every file's lstat "
     "equals its stat cache record"},
    {"list_folders", list_folders, METH_VARARGS,
     "list_folders(folders, entry_limit) -> [(names, keys) or OSError or None]: os.listdir "
     "and lstat_keys of each folder, on threads of its own"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vsync.model._lstat_match",
    "The folder walks' per-file lstat loops, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__lstat_match(void) { return PyModule_Create(&module); }
