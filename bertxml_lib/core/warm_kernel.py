"""Notebook kernels forked from one process that has already imported the library.

Every notebook starts with the same imports (torch, transformers, scikit-learn, pandas and the library:
about 10 s of CPU per kernel on 2 cores), and `run_all.py` starts a kernel per notebook execution. A
`KernelServer` imports them once; each kernel is then a `fork()` of it that runs ipykernel with the
connection file jupyter_client wrote, so a notebook's imports cost nothing and its process is still its
own (fresh globals, its own seeds, killed at the end like any kernel).

jupyter_client keeps doing everything else (ports, connection file, messages, interrupts, shutdown): the
only change is how the kernel process is created (`WarmProvisioner.launch_kernel`), and the process
handle it returns answers `poll`, `wait`, `send_signal`, `kill` and `terminate` like `subprocess.Popen`.

The server forks before any computation has run in it (imports only), so no thread pool exists to be
copied half-alive into the child.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

# What a kernel started by jupyter_client would have set before any import (ipykernel sets the backend;
# the runner turns hub progress bars off), so modules that read them at import agree with a fresh kernel.
KERNEL_ENV = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


class ForkedKernel:
    """A `subprocess.Popen`-like handle on a kernel the server forked (not a child of this process: the
    server reaps it and writes its exit code to `<state>/<pid>.exit`)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, state: Path):
        self.pid, self._exit, self.returncode = pid, state / f"{pid}.exit", None

    def poll(self) -> int | None:
        if self.returncode is None and self._exit.exists():
            text = self._exit.read_text().strip()
            if text:
                self.returncode = int(text)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # never signal a pid that may have been reused
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class KernelServer:
    """A process that imports `modules` once and forks a kernel per request (a context manager)."""

    def __init__(self, modules: list[str]):
        self.modules = list(modules)
        self.state = Path(tempfile.mkdtemp(prefix="bertxml-kernels-"))
        self._proc: subprocess.Popen | None = None
        self._ready = False

    def start(self) -> KernelServer:
        console = os.dup(1)  # the kernels' stdout: this process's, not the request pipe
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "bertxml_lib.core.warm_kernel", str(self.state), str(console), *self.modules],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, pass_fds=(console,),
                env={**os.environ, **KERNEL_ENV}, start_new_session=True)
        finally:
            os.close(console)
        return self

    def ready(self) -> None:
        """Block until the imports are done (raises if the server died while importing)."""
        line = self._proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the kernel server stopped while importing {self.modules} (exit "
                               f"{self._proc.wait()}); see the messages above")
        self._ready = True

    def fork(self, argv: list[str], env: dict[str, str], cwd: str) -> ForkedKernel:
        if not self._ready:
            self.ready()
        self._proc.stdin.write(json.dumps({"argv": argv, "env": env, "cwd": cwd}) + "\n")
        self._proc.stdin.flush()
        reply = self._proc.stdout.readline()
        if not reply:
            raise RuntimeError(f"the kernel server exited ({self._proc.wait()})")
        return ForkedKernel(int(reply), self.state)

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self) -> KernelServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def manager_class(self) -> type[AsyncKernelManager]:
        """The kernel manager class nbclient (papermill) instantiates: its kernels come from this server."""
        server = self

        class Provisioner(WarmProvisioner):
            kernel_server = server

        class Manager(AsyncKernelManager):
            async def _async_pre_start_kernel(self, **kw: Any):
                if self.provisioner is None:
                    self.kernel_id = self.kernel_id or kw.pop("kernel_id", None) or str(uuid.uuid4())
                    self.provisioner = Provisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
                return await super()._async_pre_start_kernel(**kw)

        return Manager


class WarmProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, with the kernel process forked by a `KernelServer`."""

    kernel_server: KernelServer

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        if cmd[1:3] != ["-m", "ipykernel_launcher"]:  # another kernel: launch it the usual way
            return await super().launch_kernel(cmd, **kwargs)
        env = kwargs.get("env") or dict(os.environ)
        cwd = str(kwargs.get("cwd") or Path.cwd())
        try:
            self.process = self.kernel_server.fork(cmd[3:], dict(env), cwd)
        except (OSError, RuntimeError) as exc:  # a server that failed costs time, never the notebook
            print(f"warm kernel unavailable ({exc}); launching a fresh kernel", file=sys.stderr, flush=True)
            return await super().launch_kernel(cmd, **kwargs)
        self.pid = self.pgid = self.process.pid  # the kernel leads its own session, like a launched one
        self.cwd = cwd
        return self.connection_info


def _serve(state: Path, console: int, modules: list[str]) -> None:
    """The server's loop: import, say ready, then fork one kernel per request line until stdin closes."""
    import importlib

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the runner and its kernel, not the server

    def reap(signum, frame):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            tmp = state / f"{pid}.exit.tmp"
            tmp.write_text(str(os.waitstatus_to_exitcode(status)))
            tmp.replace(state / f"{pid}.exit")

    for name in modules:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, reap)
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        started_r, started_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(started_r)
            _become_kernel(request, console, started_w)
        os.close(started_w)
        os.read(started_r, 1)  # the child has its own session: its pid is now also its process group
        os.close(started_r)
        print(pid, flush=True)


def _become_kernel(request: dict, console: int, started: int) -> None:
    """In the forked child: a session of its own, the request's environment and folder, then ipykernel."""
    code = 1
    try:
        os.setsid()
        os.write(started, b"1")
        os.close(started)
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(console, 1)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        from ipykernel import kernelapp

        # ipykernel exits if the server goes away (what `JPY_PARENT_PID` does at its import)
        sys.argv = ["ipykernel_launcher", *request["argv"], f"--IPKernelApp.parent_handle={os.getppid()}"]
        kernelapp.launch_new_instance()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        if sys.stdout:
            sys.stdout.flush()
        os._exit(code)


if __name__ == "__main__":
    _serve(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
