"""The tiny lost-update test module the plugin tests write with pytester:
run under ``LOST`` it fails every time."""

EXAMPLE = '''
import pytest
import races as racelib

class Box:
    pass

def setup():
    b = Box()
    b.n = 0
    return b

def inc(b):
    v = b.n
    racelib.point("read")
    b.n = v + 1

def inv(b):
    assert b.n == 2, f"lost update: n={b.n}"

TASKS = {"a": inc, "b": inc}
LOST = ["a:read", "b:read"]
'''
