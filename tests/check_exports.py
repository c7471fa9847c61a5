#!/usr/bin/env python3
"""Fails when one of evsse's shared libraries exports more than its API.

  check_exports.py [--allow FILE] [--counts] --headers DIR [DIR...] -- LIB.so...

The rule (module/README.md, "Packaging and linking"): every symbol in a
library's dynamic symbol table (`nm -D --defined-only -C`) is
  - in namespace evsse (a function, or the vtable, typeinfo or thunk of a
    class), outside evsse::internal, any `detail` namespace and anonymous
    namespaces, and every name on its qualified path (evsse::redis::Attach:
    redis, Attach) is an identifier of an installed header under DIR; or
  - a weak (vague linkage: nm type W, V or u) instantiation in namespace std
    or __gnu_cxx: libstdc++'s templates and typeinfo over standard or
    exported types (std::vector<std::string>::_M_realloc_insert, typeinfo
    for std::bad_variant_access), which the compiler exports from every
    C++ library whose code instantiates them. Over one of evsse's hidden
    types such an instantiation is hidden itself, so none shows an internal;
  - a line of the allow-list FILE (exact demangled names; `#` comments).
Anything else (a hidden class's method, a helper without EVSSE_API) is
reported, one line each, and the exit status is 1. --counts prints "<library> <symbols>" per library.
"""
import os
import re
import subprocess
import sys

PREFIXES = (
    "typeinfo name for ",
    "typeinfo for ",
    "vtable for ",
    "VTT for ",
    "construction vtable for ",
    "non-virtual thunk to ",
    "virtual thunk to ",
    "covariant return thunk to ",
    "guard variable for ",
)
INTERNAL = re.compile(r"(^|::)(internal|detail|\(anonymous namespace\))::")


def header_identifiers(dirs):
    names = set()
    for d in dirs:
        for root, _, files in os.walk(d):
            for f in files:
                if f.endswith(".h"):
                    with open(os.path.join(root, f), encoding="utf-8") as h:
                        names.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*",
                                                h.read()))
    return names


def qualified_path(name):
    """evsse::a::B<int>::f(int) const -> ['evsse', 'a', 'B', 'f']."""
    name = strip_prefix(name)
    parts, depth, cur, i = [], 0, "", 0
    while i < len(name):
        c = name[i]
        if depth == 0 and name.startswith("operator", i) and \
                (cur == "" or cur.endswith(":")):
            parts.append("operator")
            return parts
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif depth == 0 and c == "(":
            break
        elif depth == 0 and name.startswith("::", i):
            parts.append(cur)
            cur = ""
            i += 2
            continue
        elif depth == 0:
            cur += c
        i += 1
    parts.append(cur.strip())
    # ~Client is Client's; f[abi:cxx11] is f.
    return [re.sub(r"\[abi:[^]]*\]", "", p).lstrip("~") for p in parts]


def strip_prefix(name):
    """The entity a symbol belongs to: no "vtable for ", no return type
    (`void std::vector<...>::_M_realloc_insert<...>(...)`)."""
    for p in PREFIXES:
        if name.startswith(p):
            name = name[len(p):]
            if p.startswith(("typeinfo", "vtable", "VTT", "construction")):
                return name  # a type: `std::string (*)(std::string_view)`
            break
    depth, space = 0, -1
    for i, c in enumerate(name):
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif depth == 0 and c == "(":
            break
        elif depth == 0 and c == " " and \
                not name[:i].endswith("operator"):
            space = i
    return name[space + 1:]


def main(argv):
    allow_file, counts, headers, libs = None, False, [], []
    it = iter(argv)
    mode = None
    for a in it:
        if a == "--allow":
            allow_file = next(it)
        elif a == "--counts":
            counts = True
        elif a == "--headers":
            mode = "headers"
        elif a == "--":
            mode = "libs"
        elif mode == "headers":
            headers.append(a)
        elif mode == "libs":
            libs.append(a)
        else:
            print(f"check_exports: unexpected argument {a!r}", file=sys.stderr)
            return 2
    if not headers or not libs:
        print(__doc__, file=sys.stderr)
        return 2
    allowed = set()
    if allow_file:
        with open(allow_file, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    allowed.add(line)
    known = header_identifiers(headers)
    bad = 0
    for lib in libs:
        out = subprocess.run(["nm", "-D", "--defined-only", "-C", lib],
                             check=True, capture_output=True,
                             text=True).stdout
        symbols = []  # (nm type, demangled name)
        for line in out.splitlines():
            fields = line.split(" ", 2)
            if len(fields) < 3 or fields[1] == "A":
                continue  # version nodes (absolute symbols)
            symbols.append((fields[1], fields[2]))
        std_weak = [name for kind, name in symbols if kind in "WVu" and
                    strip_prefix(name).startswith(("std::", "__gnu_cxx::"))]
        if counts:
            print(f"{os.path.basename(lib)} {len(symbols)} "
                  f"({len(symbols) - len(std_weak)} evsse, "
                  f"{len(std_weak)} weak std)")
        for kind, name in symbols:
            if name in allowed or name in std_weak:
                continue
            bare = strip_prefix(name)
            why = None
            if not bare.startswith("evsse::"):
                why = "not in namespace evsse"
            elif INTERNAL.search(bare):
                why = "in an internal namespace"
            else:
                missing = [p for p in qualified_path(name)
                           if p != "operator" and p not in known]
                if missing:
                    why = "not declared in an installed header (" + \
                        ", ".join(missing) + ")"
            if why:
                bad += 1
                print(f"{os.path.basename(lib)}: {name}: {why}")
    if bad:
        print(f"check_exports: {bad} symbols exported beyond the API "
              "(mark the API EVSSE_API, keep the rest hidden)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
