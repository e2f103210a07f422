"""What a ``server.py`` says about how it serves, read from its source without running it."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from litserve.options import DEFAULT_SHUTDOWN_TIMEOUT

DEFAULT_PORT = 8000
_ALL_INTERFACES = ("0.0.0.0", "::", "")
_UNKNOWN = object()
_ENV_GETTERS = ("os.environ.get", "environ.get", "os.getenv", "getenv")


@dataclass
class ServerScript:
    """The serving options a ``server.py`` passes as literals (defaults where it passes none).

    ``port`` is the literal port given to ``run``; ``port_env`` names the environment variable the port is
    read from (``run(port=int(os.environ.get("PORT", 8000)))``), with ``port_default`` its fallback.
    """

    path: Path
    port: Optional[int] = None
    port_env: Optional[str] = None
    port_default: Optional[int] = None
    host: Optional[str] = None
    healthcheck_path: str = "/health"
    metrics_path: Optional[str] = "/metrics"
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    accelerator: str = "auto"
    max_batch_size: int = 1
    llm: bool = False  # serves an ``LLMAPI`` (litserve.llm): it scales on the engine's waiting requests

    @property
    def listens_on_all_interfaces(self) -> bool:
        return self.host is None or self.host in _ALL_INTERFACES

    @property
    def wants_gpu(self) -> bool:
        return self.accelerator in ("cuda", "gpu")

    def resolve_port(self, requested: Optional[int]) -> int:
        """The port the server will listen on in the container; ``requested`` must agree with the script."""
        if self.port is not None:
            if requested is not None and requested != self.port:
                raise ValueError(
                    f"{self.path.name} listens on port {self.port} (run(port={self.port})), not {requested}: "
                    f"drop --port or change the script"
                )
            return self.port
        if requested is not None:
            return requested
        return self.port_default if self.port_default is not None else DEFAULT_PORT


def read_server_script(path: Path) -> ServerScript:
    """Parse ``path`` and collect the literal options of its ``LitServer(...)`` and ``.run(...)`` calls."""
    if not path.is_file():
        raise FileNotFoundError(f"server script not found: {path}")
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as exc:
        raise ValueError(f"{path} is not valid Python: {exc}") from None
    script = ServerScript(path=path)
    found_server = False
    servers = _server_variables(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _called_name(node)
        keywords = {kw.arg: kw.value for kw in node.keywords if kw.arg}
        if "max_batch_size" in keywords:  # on LitServer or on the LitAPI itself
            value = _literal(keywords["max_batch_size"])
            if isinstance(value, int) and value > script.max_batch_size:
                script.max_batch_size = value
        if name == "LLMAPI":
            script.llm = True
        if name == "LitServer":
            found_server = True
            _read_server_options(script, keywords)
        elif name == "run" and _runs_a_server(node, servers):
            _read_run_options(script, node, keywords)
    if not found_server:
        raise ValueError(f"{path} does not create a LitServer: is it a litserve server script?")
    return script


def _server_variables(tree: ast.AST) -> set:
    """Names assigned a ``LitServer(...)``: ``server = ls.LitServer(api)``."""
    names = set()
    for node in ast.walk(tree):
        value = getattr(node, "value", None)
        if isinstance(node, ast.Assign) and isinstance(value, ast.Call) and _called_name(value) == "LitServer":
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
    return names


def _runs_a_server(node: ast.Call, servers: set) -> bool:
    """``server.run(...)`` or ``LitServer(...).run(...)``, not ``subprocess.run(...)``."""
    receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
    if isinstance(receiver, ast.Name):
        return receiver.id in servers
    return isinstance(receiver, ast.Call) and _called_name(receiver) == "LitServer"


def _read_server_options(script: ServerScript, keywords: Dict[str, ast.expr]) -> None:
    for option in ("healthcheck_path", "metrics_path", "accelerator"):
        if option in keywords:
            value = _literal(keywords[option])
            if value is not _UNKNOWN:
                setattr(script, option, value)
    if "shutdown_timeout" in keywords:
        value = _literal(keywords["shutdown_timeout"])
        if isinstance(value, (int, float)):
            script.shutdown_timeout = float(value)


def _read_run_options(script: ServerScript, node: ast.Call, keywords: Dict[str, ast.expr]) -> None:
    port = keywords.get("port")
    if port is None and len(node.args) >= 2:
        port = node.args[1]  # run(host, port)
    if port is not None:
        value = _literal(port)
        if isinstance(value, int):
            script.port = value
        else:
            env = _environment_lookup(port)
            if env is not None:
                script.port_env, script.port_default = env
    host = keywords.get("host", node.args[0] if node.args else None)
    if host is not None:
        value = _literal(host)
        if isinstance(value, str):
            script.host = value


def _environment_lookup(node: ast.expr) -> Optional[tuple]:
    """("PORT", 8000) for ``int(os.environ.get("PORT", 8000))``, ``os.getenv("PORT", "8000")`` and the like."""
    for call in ast.walk(node):
        if isinstance(call, ast.Subscript) and _dotted(call.value) in ("os.environ", "environ"):
            key = _literal(call.slice)
            if isinstance(key, str):
                return key, None
        if isinstance(call, ast.Call) and _dotted(call.func) in _ENV_GETTERS:
            args = [_literal(arg) for arg in call.args]
            if args and isinstance(args[0], str):
                default = args[1] if len(args) > 1 else None
                try:
                    return args[0], int(default) if default is not None else None
                except (TypeError, ValueError):
                    return args[0], None
    return None


def _called_name(node: ast.Call) -> Optional[str]:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _dotted(node: ast.expr) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNKNOWN
