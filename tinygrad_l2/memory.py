"""Saved arrays stay read-only while a graph needs them.

A backward reads what its forward saved.  If the user wrote into one of those arrays between
forward and backward, the gradient would be silently wrong; so while a graph node holds saved
arrays, numpy refuses writes to them ("assignment destination is read-only").

numpy's writeable flag belongs to each array *object*, not to the memory: locking a base does
not lock the views made from it earlier, and locking a view does not lock its base.  So we lock
the whole chain an array hangs from — the array, its `.base`, that one's `.base`, ... up to the
array that owns the memory (or a foreign buffer: a bytearray, another library's memory, which
numpy cannot lock).  Memory whose owner offers numpy no writable buffer (a torch tensor's
`.numpy()`, an `__array_interface__` object) is not locked at all: numpy could lock it but
never make it writable again.  It is still counted as held (an optimizer copies rather than
writes into it) and `detect_anomaly()` still compares it.  Views made *after* the lock inherit it.  Views made *before* it cannot be
reached; `detect_anomaly()` catches writes through those by comparing saved arrays at backward.

Locks are counted (two graphs saving one array unlock it when both are done), restore the
array's own earlier flag (an array the user made read-only stays so), and are atomic under one
re-entrant lock (a `Hold`'s `__del__` may release while this thread is locking).
"""
from __future__ import annotations

import threading

import numpy as np

_mutex = threading.RLock()
_entries: dict[int, _Entry] = {}  # id(array) -> _Entry, for every array some pending graph holds read-only


class _Entry:
    __slots__ = ("array", "count", "was_writeable", "deferred")

    def __init__(self, array):
        self.array, self.count, self.was_writeable = array, 0, array.flags.writeable
        self.deferred = []  # views whose flag can be restored only once this array is writable


def chain(array):
    """The array and every ndarray it is a view of, the memory owner last."""
    arrays = []
    while isinstance(array, np.ndarray):
        arrays.append(array)
        array = array.base
    return arrays


def lock(arrays):
    """Make every array in `arrays` (and what each is a view of) read-only; counted."""
    with _mutex:
        for array in arrays:
            protect = _restorable(array)
            while type(array) is np.ndarray or isinstance(array, np.ndarray):  # up the chain
                entry = _entries.get(id(array))
                if entry is None:
                    entry = _entries[id(array)] = _Entry(array)
                    if protect:
                        array.flags.writeable = False
                    else:
                        entry.was_writeable = False  # never locked: nothing to restore
                entry.count += 1
                array = array.base


def unlock(arrays):
    """Undo one `lock(arrays)`; an array becomes writable again when no graph holds it."""
    with _mutex:
        for saved in arrays:
            released, array = [], saved
            while type(array) is np.ndarray or isinstance(array, np.ndarray):
                entry = _entries.get(id(array))
                if entry is not None:
                    entry.count -= 1
                    if entry.count == 0:
                        released.append(entry)
                array = array.base
            for entry in reversed(released):  # the memory owner first: views need it writable
                del _entries[id(entry.array)]
                _restore(entry)


def _restorable(array):
    """Can numpy make `array`'s chain writable again after we lock it?  Not when the memory's
    owner is a foreign object without a writable buffer: numpy then refuses ("cannot set
    WRITEABLE flag to True of this array"), for the array and every view of it."""
    while isinstance(array, np.ndarray):
        if array.base is None or array.flags.owndata:
            return True
        array = array.base
    try:
        with memoryview(array) as view:
            return not view.readonly
    except TypeError:  # no buffer protocol at all (a torch tensor)
        return False


class Hold:
    """What a graph node keeps while it needs its saved arrays: `lock`ed on creation, unlocked
    by `release()` (after backward) or, if the graph is dropped without a backward, when the
    node is freed (this object's `__del__`: only nodes that saved arrays pay for it)."""

    __slots__ = ("arrays",)

    def __init__(self, arrays):
        lock(arrays)
        self.arrays = arrays

    def release(self):
        arrays, self.arrays = self.arrays, None
        if arrays is not None:
            unlock(arrays)

    __del__ = release


def _restore(entry):
    if not entry.was_writeable:
        return
    holder = None
    if entry.array.base is not None:  # a view: is its base still held by another graph?
        holder = next((_entries[id(a)] for a in chain(entry.array)[1:] if id(a) in _entries), None)
    if holder is not None:  # a base is still held by another graph: restore with it
        holder.deferred.append(entry)
        return
    entry.array.flags.writeable = True
    for view in entry.deferred:
        _restore(view)


def is_held(array):
    """Does a pending graph hold memory that `array` shares?  (May an optimizer write into
    `array` in place?)  Conservative: numpy's bounds test against every locked array, so two
    arrays over one foreign buffer count as sharing too."""
    with _mutex:
        return any(np.may_share_memory(array, e.array) for e in _entries.values())


def held_count():
    """How many arrays pending graphs hold read-only (0 when no graph is alive)."""
    return len(_entries)
