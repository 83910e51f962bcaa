"""Pure: before/after -> RFC 6902 JSONPatch, built by walking both documents.

Only add/remove/replace on the exact paths that changed (no `move`/`copy`, whose generation
is buggy in jsonpatch's differ and which the API server's patcher then fails on with a 500):
a changed list element is patched in place, appended elements are added at their index, so
our patch composes with other webhooks' patches.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class PatchOp(TypedDict, total=False):
    op: Literal["add", "remove", "replace"]
    path: str
    value: Any


def escape(token: str) -> str:
    """RFC 6901: `~` -> `~0`, `/` -> `~1` (label keys such as `pf-webhook/x` contain `/`)."""
    if "~" not in token and "/" not in token:
        return token
    return token.replace("~", "~0").replace("/", "~1")


def diff(before: Any, after: Any, path: str = "") -> list[PatchOp]:
    if before is after and type(before) is not float:  # shared: nothing changed (NaN aside)
        return []
    kind = type(before)
    if kind is not type(after):
        return [{"op": "replace", "path": path, "value": after}]
    if kind in _SCALARS:
        return [] if before == after else [{"op": "replace", "path": path, "value": after}]
    if isinstance(before, dict):
        ops: list[PatchOp] = []
        for key in before:
            if key not in after:
                ops.append({"op": "remove", "path": f"{path}/{escape(key)}"})
        for key, value in after.items():
            if key not in before:
                ops.append({"op": "add", "path": f"{path}/{escape(key)}", "value": value})
                continue
            old = before[key]
            if old is value and type(old) is not float:
                continue  # the same string (copies share them) or a shared subtree
            ops.extend(diff(old, value, f"{path}/{escape(key)}"))
        return ops
    if isinstance(before, list):
        named = _diff_named(before, after, path)
        if named is not None:
            return named
        ops = []
        common = min(len(before), len(after))
        for index in range(common):
            ops.extend(diff(before[index], after[index], f"{path}/{index}"))
        for index in range(common, len(after)):
            ops.append({"op": "add", "path": f"{path}/{index}", "value": after[index]})
        for index in range(len(before) - 1, common - 1, -1):
            ops.append({"op": "remove", "path": f"{path}/{index}"})
        return ops
    if before != after:
        return [{"op": "replace", "path": path, "value": after}]
    return []


_SCALARS = frozenset({str, int, float, bool})


def _names(items: list[Any]) -> list[Any] | None:
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        return None
    return names


def _diff_named(before: list[Any], after: list[Any], path: str) -> list[PatchOp] | None:
    """Lists of uniquely named objects (containers, volumes, env, mounts) are matched by name,
    so a removed or added element does not turn into edits of its neighbours. Linear in the
    list lengths (an env list may have tens of thousands of entries)."""
    old, new = _names(before), _names(after)
    if old is None or new is None or old == new:
        return None
    old_set, new_set = set(old), set(new)
    if [n for n in old if n in new_set] != [n for n in new if n in old_set]:
        return None  # reordered: fall back to positions
    ops: list[PatchOp] = []
    for index in range(len(old) - 1, -1, -1):
        if old[index] not in new_set:
            ops.append({"op": "remove", "path": f"{path}/{index}"})
    # after the removals the kept elements are in order, so position `index` of the edited
    # list holds either the next kept element or the one added there
    by_name = dict(zip(old, before, strict=True))
    for index, (item, name) in enumerate(zip(after, new, strict=True)):
        if name in old_set:
            ops.extend(diff(by_name[name], item, f"{path}/{index}"))
        else:
            ops.append({"op": "add", "path": f"{path}/{index}", "value": item})
    return ops
