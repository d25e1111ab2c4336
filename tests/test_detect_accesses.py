"""The race detector's accesses: which steps read or write which location."""
from __future__ import annotations

import os
import shutil
import tempfile
from types import SimpleNamespace

import pytest

import races


def race_locations(setup, writer, reader, **options):
    result = races.run(setup, {"w": writer, "r": reader}, schedule=[], detect_races="report", **options)
    assert result.failure is None, result.report()
    return sorted({r.location for r in result.races}), result


# -- Manager proxies ------------------------------------------------------------


def msetup():
    m = races.manager()
    return SimpleNamespace(d=m.dict({"a": 1, "b": 2}), lst=m.list([1, 2]), ns=m.Namespace(x=1, y=2))


def test_manager_dict_is_tracked_per_key():
    def w(s):
        s.d["a"] = 10

    def r_other_key(s):
        return s.d["b"] + s.d.get("c", 0)

    def r_same_key(s):
        return s.d.get("a")

    def r_whole(s):
        return list(s.d.items())

    assert race_locations(msetup, w, r_other_key)[0] == []
    assert race_locations(msetup, w, r_same_key)[0] == ["dict['a']"]
    assert race_locations(msetup, w, r_whole)[0] == ["dict['a']"]  # the key the whole read met


def test_manager_dict_reads_do_not_race():
    def r(s):
        return s.d["a"], "a" in s.d, len(s.d)

    assert race_locations(msetup, r, r)[0] == []


def test_manager_dict_update_is_a_write_of_every_key():
    def w(s):
        s.d.update({"z": 0})

    def r(s):
        return s.d["b"]

    locations, result = race_locations(msetup, w, r)
    assert locations == ["dict['b']"]
    assert result.races[0].kinds == ("write", "read")


def test_manager_list():
    def w(s):
        s.lst.append(3)

    def r(s):
        return s.lst[0]

    assert race_locations(msetup, w, r)[0] == ["list"]
    assert race_locations(msetup, r, r)[0] == []


def test_manager_namespace_per_attribute():
    def w(s):
        s.ns.x = 5

    def r_x(s):
        return s.ns.x

    def r_y(s):
        return s.ns.y

    assert race_locations(msetup, w, r_x)[0] == ["Namespace.x"]
    assert race_locations(msetup, w, r_y)[0] == []


# -- Value / Array --------------------------------------------------------------------


def vsetup():
    return SimpleNamespace(v=races.Value("i", 0, name="v"), a=races.Array("i", 4, name="a"))


def test_value():
    def w(s):
        s.v.value += 1

    def w_locked(s):
        with s.v.get_lock():
            s.v.value += 1

    locations, result = race_locations(vsetup, w, w)
    assert locations == ["v.value"]
    assert {r.kinds for r in result.races} == {("write", "read"), ("write", "write")}
    assert race_locations(vsetup, w_locked, w_locked)[0] == []


def test_array_per_index():
    def w0(s):
        s.a[0] = 1

    def r1(s):
        return s.a[1] + s.a[-3]

    def r0(s):
        return s.a[-4]

    def r_slice(s):
        return s.a[0:2]

    assert race_locations(vsetup, w0, r1)[0] == []
    assert race_locations(vsetup, w0, r0)[0] == ["a[0]"]
    assert race_locations(vsetup, w0, r_slice)[0] == ["a[0:2]"]


# -- races.shared ------------------------------------------------------------------------


def ssetup():
    return SimpleNamespace(obj=races.shared(SimpleNamespace(x=0, y=0), "obj"),
                           d=races.shared({"k": 0, "j": 0}, "d"),
                           lst=races.shared([], "lst"))


def test_shared_attributes():
    def w(s):
        s.obj.x = 1

    def r_x(s):
        return s.obj.x

    def r_y(s):
        return s.obj.y

    assert race_locations(ssetup, w, r_x)[0] == ["obj.x"]
    assert race_locations(ssetup, w, r_y)[0] == []


def test_shared_items():
    def w(s):
        s.d["k"] += 1

    def r_k(s):
        return s.d["k"]

    def r_j(s):
        return s.d["j"], s.d.get("j")

    assert race_locations(ssetup, w, r_k)[0] == ["d['k']"]
    assert race_locations(ssetup, w, r_j)[0] == []


def test_shared_container_methods():
    def w(s):
        s.lst.append(1)

    def r(s):
        return len(s.lst)

    assert race_locations(ssetup, w, r)[0] == ["lst"]


def test_shared_accesses_are_steps_in_the_trace():
    def w(s):
        s.obj.x = 1

    result = races.run(ssetup, {"w": w}, schedule=[])
    assert ("w", "obj.write") in result.steps()
    assert races.shared([1]) .__len__() == 1  # outside the harness it just forwards


# -- watched files ----------------------------------------------------------------------------


def fsetup():
    folder = tempfile.mkdtemp(prefix="races-detect-")
    with open(os.path.join(folder, "f.txt"), "w") as f:
        f.write("0")
    return {"folder": folder}


def fteardown(state):
    shutil.rmtree(state["folder"], ignore_errors=True)


def path(s, name="f.txt"):
    return os.path.join(s["folder"], name)


def f_read(s):
    with open(path(s)) as f:
        return f.read()


def f_truncate(s):
    with open(path(s), "w") as f:
        f.write("1")


def f_append(s):
    with open(path(s), "a") as f:
        f.write("1")


def f_replace(s):
    with open(path(s, "tmp.txt"), "w") as f:
        f.write("2")
    os.replace(path(s, "tmp.txt"), path(s))


def f_other(s):
    with open(path(s, "other.txt"), "w") as f:
        f.write("1")


WATCH = {"watch": lambda state: [state["folder"]], "teardown": fteardown}


@pytest.mark.parametrize("writer,reader,expected", [
    (f_read, f_read, []),
    (f_truncate, f_read, ["f.txt"]),
    (f_append, f_read, ["f.txt"]),
    (f_truncate, f_append, ["f.txt"]),
    (f_other, f_read, []),
    (f_replace, f_read, []),  # os.replace is atomic: readers see the old or the new file
    (f_replace, f_truncate, ["f.txt"]),
    (f_replace, f_replace, ["tmp.txt"]),  # the temp file, written in place by both
], ids=["read-read", "truncate-read", "append-read", "truncate-append", "other-file",
        "replace-read", "replace-truncate", "replace-replace"])
def test_watched_files(writer, reader, expected):
    assert race_locations(fsetup, writer, reader, **WATCH)[0] == expected


def test_watched_file_kinds_in_the_trace():
    result = races.run(fsetup, {"w": f_replace, "r": f_read}, schedule=[], **WATCH)
    names = [e.describe() for e in result.trace if e.kind == "file"]
    assert names == ["tmp.txt.truncate", "f.txt.replace", "f.txt.read"]


def test_watch_patches_only_during_the_run():
    import builtins

    real = builtins.open
    races.run(fsetup, {"w": f_read}, schedule=[], **WATCH)
    assert builtins.open is real and os.replace.__module__ in ("os", "posix", "nt")


def test_unwatched_files_are_not_steps():
    result = races.run(fsetup, {"w": f_truncate, "r": f_read}, schedule=[], detect_races=True,
                       teardown=fteardown)
    assert result.failure is None and not [e for e in result.trace if e.kind == "file"]


def test_watch_takes_a_plain_list(tmp_path):
    (tmp_path / "f.txt").write_text("0")

    def w(s):
        with open(tmp_path / "f.txt", "w") as f:
            f.write("1")

    def r(s):
        with open(str(tmp_path / "f.txt")) as f:
            return f.read()

    result = races.run(lambda: None, {"w": w, "r": r}, schedule=[], detect_races=True, watch=[tmp_path])
    assert result.failure.kind == "race"
    race = result.races[0]
    assert race.location == "f.txt" and race.kinds == ("write", "read")
    assert race.first.stack[0][1] == "w" and race.second.stack[0][1] == "r"


def test_manager_race_report_has_a_stack():
    def helper(s):
        s.d["a"] = s.d["a"] + 1

    def task(s):
        helper(s)

    result = races.run(msetup, {"a": task, "b": task}, schedule=[], detect_races=True)
    text = result.failure.message
    assert "in helper()" in text and "in task()" in text


def test_watched_files_in_the_process_backend():
    options = {"backend": "process", "start_method": "forkserver", **WATCH}
    assert race_locations(fsetup, f_truncate, f_read, **options)[0] == ["f.txt"]
    assert race_locations(fsetup, f_replace, f_read, **options)[0] == []
