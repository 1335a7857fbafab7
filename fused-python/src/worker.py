"""fused-rs Python worker: compiles UDF code once, keeps it warm, and calls it on request.

Spoken over the process's original stdin/stdout: each message is a 4-byte little-endian length
and that many bytes of JSON; a reply carrying bytes (an Arrow IPC stream, an array) says
`"payload": n` and the n bytes follow. Fd 0 and 1 are moved aside first, so a UDF that reads
stdin or prints (from Python or C) cannot corrupt the protocol: its prints are captured per
call and returned with the reply.

Requests:  {"op": "compile", "code": str, "entrypoint": str | null}
           {"op": "call", "udf": id, "params": {...}}
           {"op": "ping"}
Replies:   {"ok": true, ...} or {"ok": false, "error": {"class", "message", "line", "traceback"}}
"""
import ast
import contextlib
import io
import json
import os
import struct
import sys
import traceback
import types

_proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
_proto_out = os.fdopen(os.dup(1), "wb")
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.dup2(2, 1)
sys.stdin = open(os.devnull)


def _install_fused():
    """`import fused` inside UDF code: the decorators UDFs use, as our own small module (the
    official package's local engine costs more per call than the process boundary we add)."""
    m = types.ModuleType("fused")

    def udf(fn=None, **_options):
        return (lambda f: f) if fn is None else fn

    def cache(fn=None, **options):
        """Results kept in the host's cache, keyed by the function's code and its arguments
        (pickled); `cache_max_age` as in Fused (`"12h"`, seconds), default 12 hours."""
        if fn is None:
            return lambda f: cache(f, **options)
        import functools
        import hashlib
        import inspect
        import pickle
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):
            source = fn.__qualname__

        @functools.wraps(fn)
        def cached(*args, **kwargs):
            try:
                key = hashlib.sha256(
                    source.encode() + pickle.dumps((args, sorted(kwargs.items())))).hexdigest()
            except Exception:  # noqa: BLE001 — arguments that do not pickle: no cache
                return fn(*args, **kwargs)
            hit = _host({"op": "cache_get", "key": key})
            if hit is not None:
                return pickle.loads(hit)
            value = fn(*args, **kwargs)
            try:
                blob = pickle.dumps(value)
            except Exception:  # noqa: BLE001 — results that do not pickle are not kept
                return value
            _host({"op": "cache_put", "key": key,
                   "max_age": str(options.get("cache_max_age", "12h"))}, blob)
            return value

        return cached

    def run(udf, *args, **params):
        """Runs a UDF: a function of this code in this process, a name or token on the
        host (which applies its recursion limit)."""
        if callable(udf) and not isinstance(udf, _Remote):
            return udf(*args, **params)
        if isinstance(udf, _Remote):
            udf = udf.name
        if args:
            raise TypeError("fused.run(name, ...) takes parameters by name")
        return _host({"op": "run", "udf": str(udf), "params": params})

    def submit(udf, arg_list, **_options):
        """Runs `udf` once per input (a dict of parameters, or the value of its first one),
        one after the other through `fused.run`; DataFrames are concatenated, other results
        listed."""
        results = []
        for item in arg_list:
            if isinstance(item, dict):
                results.append(run(udf, **item))
            elif callable(udf):
                results.append(udf(item))
            else:
                raise TypeError("fused.submit(name, [...]) takes dicts of parameters")
        if results and all(type(r).__name__ in ("DataFrame", "GeoDataFrame") for r in results):
            import pandas as pd
            return pd.concat(results, ignore_index=True)
        return results

    scratch = os.path.join(os.environ.get("TMPDIR", "/tmp"), "fused-rs-files")

    def file_path(name="", mkdir=True):
        """A path under this machine's scratch folder for UDF files (kept between calls)."""
        path = os.path.join(scratch, *[p for p in str(name).split("/") if p not in ("", ".", "..")])
        if mkdir:
            os.makedirs(path if not os.path.splitext(path)[1] else os.path.dirname(path),
                        exist_ok=True)
        return path

    def download(url, file_path_=None, **_options):
        """Downloads `url` once into the scratch folder; its local path."""
        import hashlib
        import urllib.request
        name = file_path_ or hashlib.sha256(url.encode()).hexdigest()[:24] + "-" + \
            os.path.basename(url.split("?")[0])
        target = file_path(os.path.join("downloads", name))
        if not os.path.exists(target):
            tmp = target + ".part"
            with urllib.request.urlopen(url) as r, open(tmp, "wb") as f:
                while chunk := r.read(1 << 20):
                    f.write(chunk)
            os.replace(tmp, target)
        return target

    class _Remote:
        """A UDF of the host, by name: calling it runs it there."""

        def __init__(self, name):
            self.name = name

        def __call__(self, *args, **params):
            return run(self.name, *args, **params)

        def __repr__(self):
            return f"<UDF {self.name} (on the host)>"

    def load(ref, **_options):
        """Code (text with a line break) or a `.py` file: its UDF function, compiled here; a
        name or token: a callable that runs it on the host."""
        ref = str(ref)
        if "\n" in ref or ref.endswith(".py"):
            code = ref if "\n" in ref else open(ref).read()
            tree = ast.parse(code, "<loaded>")
            name = _entrypoint(tree, None)
            ns = {"fused": m}
            exec(compile(tree, "<loaded>", "exec"), ns)
            return ns[name]
        return _Remote(ref)

    m.submit, m.file_path, m.download, m.load = submit, file_path, download, load
    m.options = types.SimpleNamespace(cache_directory=scratch)
    m.udf, m.cache, m.run = udf, cache, run
    m.__fused_rs__ = True
    # Annotation types UDFs use (`bounds: fused.types.Bounds`): names only.
    t = types.ModuleType("fused.types")
    for name in ("Bounds", "Tile", "TileXYZ", "TileGDF", "ViewportGDF"):
        setattr(t, name, type(name, (), {}))
    m.types = t
    sys.modules["fused"] = m
    sys.modules["fused.types"] = t


class HostError(RuntimeError):
    """A call into the host failed; `.cls` is the failure's class there."""

    def __init__(self, cls, message):
        super().__init__(f"{cls}: {message}")
        self.cls = cls


def _host(request, payload=None):
    """Asks the host (from inside a UDF call) and waits for its answer."""
    _write({"callback": request}, payload)
    reply = _read()
    if reply is None:
        raise HostError("EOFError", "the host closed the worker's input")
    payload = _read_exact(reply["payload"]) if reply.get("payload") else None
    if not reply.get("ok"):
        err = reply.get("error") or {}
        raise HostError(err.get("class", "Error"), err.get("message", ""))
    kind = reply.get("kind")
    if kind == "bytes":
        return payload
    if kind == "json":
        return reply.get("value")
    if kind == "arrow":
        import pyarrow as pa
        table = pa.ipc.open_stream(payload).read_all()
        df = table.to_pandas()
        geom = reply.get("geometry")
        if geom:
            import geopandas as gpd
            df[geom] = gpd.GeoSeries.from_wkb(df[geom])
            return gpd.GeoDataFrame(df, geometry=geom, crs=reply.get("crs"))
        return df
    raise HostError("TypeError", f"the host answered a {kind}")


_install_fused()


def _limit_memory():
    """The host's memory limit for this worker (address space; a UDF past it gets a
    MemoryError, and the worker lives on)."""
    limit = os.environ.pop("FUSED_WORKER_MEMORY_BYTES", None)
    if limit:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))


_limit_memory()

#: Characters of captured output kept per stream and call.
MAX_OUTPUT = 1 << 20

_udfs = {}


def _read_exact(n):
    body = b""
    while len(body) < n:
        chunk = _proto_in.read(n - len(body))
        if not chunk:
            return None
        body += chunk
    return body


def _read():
    head = _read_exact(4)
    if head is None:
        return None
    (n,) = struct.unpack("<I", head)
    body = _read_exact(n)
    return None if body is None else json.loads(body)


def _write(msg, payload=None):
    if payload is not None:
        msg["payload"] = len(payload)
    body = json.dumps(msg, default=str).encode()
    _proto_out.write(struct.pack("<I", len(body)) + body)
    if payload is not None:
        _proto_out.write(payload)
    _proto_out.flush()


def _error(exc, filename="<udf>"):
    line = getattr(exc, "lineno", None) if isinstance(exc, SyntaxError) else None
    if line is None:
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename == filename:
                line = frame.lineno
                break
    return {
        "class": type(exc).__name__,
        "message": str(exc),
        "line": line,
        "traceback": "".join(traceback.format_exception(exc)),
    }


def _is_udf_decorator(d):
    target = d.func if isinstance(d, ast.Call) else d
    if isinstance(target, ast.Attribute):
        return target.attr == "udf"
    return isinstance(target, ast.Name) and target.id == "udf"


def _entrypoint(tree, asked):
    if asked:
        return asked
    found = [n.name for n in tree.body
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
             and any(_is_udf_decorator(d) for d in n.decorator_list)]
    if len(found) == 1:
        return found[0]
    if "udf" in found:
        return "udf"
    if not found:
        raise ValueError("no function decorated with @fused.udf in the code")
    raise ValueError(f"several @fused.udf functions ({', '.join(found)}) and none named udf")


def _param(p):
    ann = p.annotation
    has_default = p.default is not p.empty
    default = None
    if has_default:
        try:
            json.dumps(p.default)
            default = p.default
        except (TypeError, ValueError):
            default = None
    return {
        "name": p.name,
        "annotation": None if ann is p.empty else getattr(ann, "__name__", str(ann)),
        "default": default,
        "has_default": has_default,
        "required": not has_default and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD),
        "kind": p.kind.name,
    }


def _install_headers(headers):
    """Header modules (the SDK's shared modules) importable by the UDF's code."""
    for h in headers or []:
        name = h["module_name"]
        mod = types.ModuleType(name)
        mod.__file__ = f"<{name}>"
        exec(compile(h.get("source_code") or "", f"<{name}>", "exec"), mod.__dict__)
        sys.modules[name] = mod


def _compile(req):
    import inspect
    code = req["code"]
    _install_headers(req.get("headers"))
    tree = ast.parse(code, "<udf>")
    name = _entrypoint(tree, req.get("entrypoint"))
    module = types.ModuleType("udf_module")
    module.__file__ = "<udf>"
    # As in Fused, `fused` is there without an import.
    module.fused = sys.modules["fused"]
    exec(compile(tree, "<udf>", "exec"), module.__dict__)
    fn = module.__dict__.get(name)
    fn = getattr(fn, "__wrapped__", fn)
    if not callable(fn):
        raise NameError(f"the entrypoint {name} is not a function of the code")
    uid = str(len(_udfs) + 1)
    _udfs[uid] = fn
    params = [_param(p) for p in inspect.signature(fn).parameters.values()]
    return {"udf": uid, "entrypoint": name, "params": params}


def _encode(value):
    """(reply fields, payload bytes or None) for a UDF's return value."""
    if value is None or isinstance(value, (bool, int, float, str, list, dict)):
        return {"kind": "json", "value": value}, None
    mod = type(value).__module__.split(".")[0]
    if mod in ("pandas", "geopandas", "pyarrow"):
        import pyarrow as pa
        meta = {}
        if mod == "geopandas":
            crs = value.crs.to_string() if value.crs is not None else None
            geom = value.geometry.name
            value = value.to_wkb()
            meta = {"geometry": geom, "crs": crs}
        table = value if isinstance(value, pa.Table) else pa.Table.from_pandas(value, preserve_index=False)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        return {"kind": "arrow", **meta}, sink.getvalue().to_pybytes()
    bounds = None
    if isinstance(value, tuple) and len(value) == 2 and type(value[0]).__module__ == "numpy":
        value, bounds = value
        bounds = [float(b) for b in bounds]
    if type(value).__module__ == "numpy":
        import numpy as np
        a = np.ascontiguousarray(value)
        return {"kind": "array", "dtype": a.dtype.str, "shape": list(a.shape), "bounds": bounds}, a.tobytes()
    raise TypeError(f"the UDF returned a {type(value).__module__}.{type(value).__qualname__}, "
                    "which cannot be sent back (return a DataFrame, a GeoDataFrame, an Arrow "
                    "table, a numpy array or a JSON value)")


def _cap(text):
    return text if len(text) <= MAX_OUTPUT else text[:MAX_OUTPUT] + f"\n… ({len(text) - MAX_OUTPUT} more characters)"


def _call(req):
    fn = _udfs.get(str(req.get("udf")))
    if fn is None:
        raise KeyError(f"no compiled UDF {req.get('udf')}")
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            value = fn(**req.get("params", {}))
        reply, payload = _encode(value)
        reply["ok"] = True
    except BaseException as e:  # noqa: BLE001  (a UDF's SystemExit is its own failure)
        reply, payload = {"ok": False, "error": _error(e)}, None
    reply["stdout"], reply["stderr"] = _cap(out.getvalue()), _cap(err.getvalue())
    return reply, payload


def main():
    _write({"ok": True, "ready": True, "python": sys.version.split()[0], "pid": os.getpid()})
    while True:
        req = _read()
        if req is None:
            return
        op = req.get("op")
        try:
            if op == "compile":
                _write({"ok": True, **_compile(req)})
            elif op == "call":
                reply, payload = _call(req)
                _write(reply, payload)
            elif op == "ping":
                _write({"ok": True})
            else:
                _write({"ok": False, "error": {"class": "ValueError", "message": f"unknown op {op!r}"}})
        except BaseException as e:  # noqa: BLE001
            _write({"ok": False, "error": _error(e)})


if __name__ == "__main__":
    main()
