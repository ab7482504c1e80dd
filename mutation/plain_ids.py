# Appended by mutation/run.py to the scratch copy's tests/conftest.py (never to the real one).
# mutmut selects a mutant's tests by node id, and pytest cannot select an id that it printed with
# escapes (a bytes or str parameter such as b"/a\n" shows as "/a\\n"): such parameters get an
# id of plain hex digits instead, in the scratch copy only.


def pytest_make_parametrize_id(config, val, argname):
    if isinstance(val, str):
        val = val.encode()
    if isinstance(val, bytes) and not all(0x20 <= b < 0x7F and b != 0x5C for b in val):
        return "hex-" + val.hex()
    return None
