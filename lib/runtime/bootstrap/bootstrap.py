# The local Python Lambda runtime: one long-lived process per slot, fed invocations over pipe fds 3 (in) and 4 (out);
# fd 5 (in) takes back requests written ahead that have not started.
#
# Stdlib only. Loads the handler like awslambdaric (task root first on sys.path), builds a Lambda context per
# invocation and answers with length-prefixed frames, so anything the worker prints on stdout/stderr can never
# disturb the transport.
#
# Request frame:  u32 header length | u32 body length | header | event JSON
#   header: "timeout ms\tattempt\tfunction arn\trequest id\tsession id\ttask id" (UTF-8), or a JSON object with
#   id, timeout, arn, cc (client context) and optionally trace when a field would not fit that form. The timeout
#   counts from when this runtime starts the request: the invoker may write the next request while one runs.
# Response frame: u32 length of the rest | u8 kind | u32 stdout bytes | u32 stderr bytes | body
#   kind 0 = result JSON, 1 = error JSON, 2 = ready (body: PROTOCOL_VERSION), 3 = init error JSON,
#   4 = error JSON and the runtime is exiting (used by bootstrap.js on an uncaught error),
#   5 = withdrawn (body: the request's number as decimal text; byte counts 0): it will never start.
# Withdraw frame (fd 5): u32 number of a request written ahead (the first request written is 1). A thread of its own
#   reads them, so a request queued behind a long-running one can be taken back while that one runs: it answers
#   `withdrawn` only when the request has not started, and the main loop then skips it; otherwise it says nothing
#   (the request's own answer follows). One lock decides which of the two comes first.
#   The byte counts are what the worker wrote through sys.stdout/sys.stderr since the previous frame, so the
#   invoker can attribute output to the right task even when it arrives after the response.
#
# The worker must not see any of this, as on Lambda: the pipes are moved from 3, 4 and 5 to high descriptors that
# child processes do not inherit before the handler is imported, and the withdraw thread is started with `_thread`
# (not in threading's registry) and stopped around every fork (see _Withdrawals).
import _thread
import decimal
import errno
import fcntl
import importlib
import json
import logging
import os
import select
import struct
import sys
import time
import traceback

REQUEST_FD = 3
RESPONSE_FD = 4
KIND_RESULT = 0
KIND_ERROR = 1
KIND_READY = 2
KIND_INIT_ERROR = 3
KIND_WITHDRAWN = 5
WITHDRAW_FD = 5
# Must match PROTOCOL_VERSION in lib/runtime/local/frame-codec.ts.
PROTOCOL_VERSION = b"htcgrid-runtime/3"
_U32 = 0xFFFFFFFF
_THIS_FILE = os.path.abspath(__file__)
_HEAD = struct.Struct(">IBII")
_REQ = struct.Struct(">II")
_U32_STRUCT = struct.Struct(">I")


class FaultException(Exception):
    MARSHAL_ERROR = "Runtime.MarshalError"
    UNMARSHAL_ERROR = "Runtime.UnmarshalError"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"

    def __init__(self, exception_type, msg, trace=None):
        super().__init__(msg)
        self.msg = msg
        self.exception_type = exception_type
        self.trace = trace


class _CountingStream(object):
    """sys.stdout/sys.stderr: unbuffered like awslambdaric's, and counting the bytes written."""

    def __init__(self, stream, fd):
        self._stream = stream
        self._fd = fd
        self.count = 0

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        data = text.encode("utf-8", "backslashreplace")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            self.count += written
            view = view[written:]
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def __getattr__(self, name):
        return getattr(self._stream, name)


# --- context -------------------------------------------------------------------------------------------------


class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __init__(self, cognito_identity_id=None, cognito_identity_pool_id=None):
        self.cognito_identity_id = cognito_identity_id
        self.cognito_identity_pool_id = cognito_identity_pool_id

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.cognito_identity_id,
            self.cognito_identity_pool_id,
        )


class Client(object):
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]


class ClientContext(object):
    __slots__ = ["custom", "env", "client"]

    def __repr__(self):
        return "ClientContext([custom=%s,env=%s,client=%s])" % (self.custom, self.env, self.client)


def _obj_from_dict(cls, values):
    if values is None:
        return None
    obj = cls()
    for field in cls.__slots__:
        setattr(obj, field, values.get(field))
    return obj


class LambdaContext(object):
    """The same attributes and methods as awslambdaric's LambdaContext."""

    def __init__(self, invoke_id, client_context, deadline_ms, invoked_function_arn):
        self.aws_request_id = invoke_id
        self.log_group_name = _ENV_LOG_GROUP
        self.log_stream_name = _ENV_LOG_STREAM
        self.function_name = _ENV_FUNCTION_NAME
        self.memory_limit_in_mb = _ENV_MEMORY
        self.function_version = _ENV_FUNCTION_VERSION
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = None
        if client_context is None:
            self.client_context = None
        else:
            cc = self.client_context = ClientContext()
            cc.custom = client_context.get("custom")
            cc.env = client_context.get("env")
            cc.client = _obj_from_dict(Client, client_context.get("client"))
        self.identity = CognitoIdentity()
        self._epoch_deadline_time_in_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        delta_ms = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return delta_ms if delta_ms > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,function_name=%s,"
            "memory_limit_in_mb=%s,function_version=%s,invoked_function_arn=%s,client_context=%s,identity=%s])"
            % (
                self.aws_request_id,
                self.log_group_name,
                self.log_stream_name,
                self.function_name,
                self.memory_limit_in_mb,
                self.function_version,
                self.invoked_function_arn,
                self.client_context,
                self.identity,
            )
        )


_ENV_LOG_GROUP = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
_ENV_LOG_STREAM = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
_ENV_FUNCTION_NAME = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
_ENV_MEMORY = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
_ENV_FUNCTION_VERSION = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")

# --- handler loading (as awslambdaric's _get_handler) ----------------------------------------------------------


def _get_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise FaultException(FaultException.MALFORMED_HANDLER_NAME, "Bad handler '{}': {}".format(handler, str(e)))
    if modname.split(".")[0] in sys.builtin_module_names:
        raise FaultException(
            FaultException.BUILT_IN_MODULE_CONFLICT, "Cannot use built-in module {} as a handler module".format(modname)
        )
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise FaultException(
            FaultException.IMPORT_MODULE_ERROR, "Unable to import module '{}': {}".format(modname, str(e))
        )
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise FaultException(
            FaultException.USER_CODE_SYNTAX_ERROR, "Syntax error in module '{}': {}".format(modname, str(e)), trace
        )
    try:
        return getattr(module, fname)
    except AttributeError:
        raise FaultException(
            FaultException.HANDLER_NOT_FOUND, "Handler '{}' missing on module '{}'".format(fname, modname)
        )


# --- marshalling -------------------------------------------------------------------------------------------------


def _default(obj):
    if isinstance(obj, decimal.Decimal):
        return float(obj)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


_ENSURE_ASCII = os.environ.get("AWS_EXECUTION_ENV") not in {"AWS_Lambda_python3.12"}
_encoder = json.JSONEncoder(ensure_ascii=_ENSURE_ASCII, default=_default)


def _marshal(response):
    if isinstance(response, (bytes, bytearray)):
        try:
            text = bytes(response).decode("utf-8")
            json.loads(text)
        except Exception:
            raise FaultException(
                FaultException.MARSHAL_ERROR,
                "Unable to marshal response: the handler returned bytes that are not UTF-8 JSON text",
            )
        return text.encode("utf-8")
    try:
        return _encoder.encode(response).encode("utf-8", "backslashreplace")
    except Exception as e:
        raise FaultException(FaultException.MARSHAL_ERROR, "Unable to marshal response: {}".format(str(e)))


def _make_error(message, error_type, stack_trace):
    return {
        "errorMessage": message if message else "",
        "errorType": error_type if error_type else "",
        "stackTrace": stack_trace if stack_trace else [],
    }


def _error_from_exception(exc):
    tb_list = traceback.extract_tb(exc.__traceback__)
    for i, frame in enumerate(tb_list):
        if os.path.abspath(frame.filename) != _THIS_FILE:
            tb_list = tb_list[i:]
            break
    try:
        message = str(exc)
    except Exception:
        message = "<exception str() failed>"
    return _make_error(message, type(exc).__name__, traceback.format_list(tb_list))


def _error_body(error):
    try:
        return json.dumps(error).encode("utf-8")
    except Exception:
        return json.dumps(_make_error(repr(error.get("errorMessage")), error.get("errorType"), [])).encode("utf-8")


# --- logging (as awslambdaric's text format) ---------------------------------------------------------------------


def _log_error(error):
    """Logs a failed invocation on stdout as awslambdaric's StandardLogSink does (lines joined by \\r)."""
    try:
        description = "[ERROR]"
        if error["errorType"]:
            description += " " + error["errorType"]
        if error["errorMessage"]:
            description += (":" if error["errorType"] else "") + " " + error["errorMessage"]
        lines = [description]
        if error["stackTrace"]:
            lines.append("Traceback (most recent call last):")
            for element in error["stackTrace"]:
                lines.extend(element.splitlines())
        _stdout.write("\r".join(lines) + "\n")
    except Exception:
        pass  # the worker closed stdout: nothing to log to


_request_id = ""


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _request_id
        return True


class _StdoutHandler(logging.Handler):
    def emit(self, record):
        try:
            sys.stdout.write(self.format(record))
        except Exception:
            self.handleError(record)


def _setup_logging():
    logging.Formatter.converter = time.gmtime
    handler = _StdoutHandler()
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n", "%Y-%m-%dT%H:%M:%S"
        )
    )
    handler.addFilter(_RequestIdFilter())
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    if level in logging._nameToLevel:
        logging.getLogger().setLevel(level)
    logging.getLogger().addHandler(handler)


# --- transport ---------------------------------------------------------------------------------------------------


# Where the pipes are once main() has moved them (see _move_fd).
_request_fd = REQUEST_FD
_response_fd = RESPONSE_FD

# The main loop and the withdraw thread both write frames.
_send_lock = _thread.allocate_lock()


def _send(kind, body):
    out_count = _stdout.count
    err_count = _stderr.count
    _stdout.count = 0
    _stderr.count = 0
    _write_frame(_HEAD.pack(len(body) + 9, kind, min(out_count, _U32), min(err_count, _U32)) + body)


def _write_frame(frame):
    with _send_lock:
        written = os.write(_response_fd, frame)
        if written < len(frame):
            view = memoryview(frame)[written:]
            while view:
                view = view[os.write(_response_fd, view) :]


# Requests are numbered in the order read (1, 2, ...). Under `_start_lock`: the number of the last one started, and
# the numbers withdrawn before they started (the main loop drops each as it reads it).
_start_lock = _thread.allocate_lock()
_started = 0
_withdrawn = set()


def _take_back(number):
    """Takes back request `number` if it has not started, and says so; the withdraw thread's decision."""
    with _start_lock:
        if number <= _started or number in _withdrawn:
            return  # it started (its answer follows) or was taken back already
        _withdrawn.add(number)
        # Written before the main loop can go past this request: the invoker matches answers to requests by their
        # order, so a later request's answer sent ahead of this frame would be taken for this one's. (The main loop
        # never waits for this lock while it holds the send lock: no deadlock.)
        body = str(number).encode("ascii")
        _write_frame(_HEAD.pack(len(body) + 9, KIND_WITHDRAWN, 0, 0) + body)


# Whether os.fork() counts the process's threads (for its "multi-threaded, use of fork() may lead to deadlocks"
# DeprecationWarning, 3.12+) before it runs the after_in_parent hooks, so the withdraw thread can be restarted from
# one. 3.12 does; 3.13 before 3.13.10 and 3.14.0 count after them (python/cpython#137109), so there the main loop
# restarts the thread (`resume`) before it reads a request and again before it starts one: a fork made while a
# request runs stops take-backs until that request ends; one made between requests (a thread of the worker's own,
# a multiprocessing Pool replacing a process) only until the next request is read.
_RESTART_IN_FORK_HOOK = sys.version_info[:3] < (3, 13, 0) or (3, 13, 10) <= sys.version_info[:3] < (3, 14, 0) or (
    sys.version_info[:3] >= (3, 14, 1)
)


# Whether the OS threads of this process can be seen ending (Linux); see _Withdrawals.before_fork.
_TASKS_VISIBLE = os.path.isdir("/proc/self/task")


class _Withdrawals(object):
    """The withdraw thread: reads take-backs from the withdraw pipe and answers them (`_take_back`).

    Invisible to the worker, as Lambda's runtime is: started with `_thread`, so threading.enumerate() and
    active_count() do not show it; stopped before every fork (os.fork, multiprocessing's fork start method) and
    restarted after it in the parent, so the process forks single-threaded: CPython 3.12+ counts the OS threads
    (/proc/self/stat on Linux) to decide its fork DeprecationWarning, so leaving it out of the registry is not enough.
    A forked child has no withdraw thread (fork copies only the calling thread), starts none, and closes the
    runtime's pipes, so it can neither answer for the runtime nor keep its response pipe open after it exits.

    States: running (`done` held by the thread), stopped for a fork (`control` held from the `before` hook to the
    `after` one, `restart_due`), ended (`ended`: the agent closed the pipe, or in a forked child: never restarted).
    """

    def __init__(self, fd):
        self.fd = fd
        self.wake_r, self.wake_w = (_move_fd(end) for end in os.pipe())
        self.control = _thread.allocate_lock()
        self.done = None
        self.native_id = None
        self.ended = False
        self.restart_due = False
        self.pending = b""  # the start of a frame read before a stop, kept for the next thread

    def start(self):
        with self.control:
            self._start()

    def _start(self):
        if self.ended or self.done is not None:
            return
        done = _thread.allocate_lock()
        done.acquire()
        self.done = done
        _thread.start_new_thread(self._run, (done,))

    def resume(self):
        """Restarts the thread if a fork stopped it and its hook could not restart it (the main loop calls this).

        Waits for a fork under way in another thread of the worker's. On the versions that count threads after the
        hooks (see _RESTART_IN_FORK_HOOK), a restart that lands between that fork's last hook and its count gives
        the worker the fork warning: rare, and nothing else goes wrong."""
        if self.restart_due:
            with self.control:
                self.restart_due = False
                # The take-backs that came while the thread was down are answered here, before the main loop goes
                # on to start the requests they name (a thread just started might not have read them yet).
                poller = select.poll()
                poller.register(self.fd, select.POLLIN)
                while not self.ended and poller.poll(0) and self._read():
                    pass
                self._start()

    def _run(self, done):
        self.native_id = _thread.get_native_id()
        try:
            self._serve()
        finally:
            done.release()

    def _serve(self):
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while True:
            ready = [fd for fd, _ in poller.poll()]
            if self.wake_r in ready:
                os.read(self.wake_r, 64)
                return  # stopped for a fork
            if not self._read():
                return

    def _read(self):
        """Reads what the pipe holds and takes those requests back; False once the agent has closed it."""
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            self.ended = True  # the agent closed the pipe: nothing more to take back
            return False
        pending = self.pending + chunk
        while len(pending) >= 4:
            (number,) = _U32_STRUCT.unpack(pending[:4])
            pending = pending[4:]
            _take_back(number)
        self.pending = pending
        return True

    def before_fork(self):
        self.control.acquire()
        done = self.done
        if done is None:
            return
        os.write(self.wake_w, b"x")
        done.acquire()
        self.done = None
        self.restart_due = not self.ended
        # The thread has returned; wait until the OS thread is gone too (what CPython counts), a few microseconds.
        # Only Linux shows it (/proc/self/task); elsewhere (macOS counts with task_threads) there is nothing portable
        # to wait on, so this is best effort: the thread is past its last Python line and usually gone before fork
        # counts, at worst the worker gets the fork warning once.
        if _TASKS_VISIBLE:
            task = "/proc/self/task/%d" % self.native_id
            for _ in range(2000):
                if not os.path.exists(task):
                    break
                time.sleep(0.00005)

    def after_fork_in_parent(self):
        try:
            if self.restart_due and _RESTART_IN_FORK_HOOK:
                self.restart_due = False
                self._start()
        finally:
            self.control.release()

    def after_fork_in_child(self):
        self.ended = True
        self.restart_due = False
        self.done = None
        self.control = _thread.allocate_lock()  # the parent's, held across the fork
        for fd in (self.fd, self.wake_r, self.wake_w, _request_fd, _response_fd):
            try:
                os.close(fd)
            except OSError:
                pass


_withdrawals = None


def _move_fd(fd):
    """A duplicate of `fd` on a high descriptor, not inherited by programs the worker runs; `fd` is closed.

    So the worker finds 3, 4 and 5 free, as on Lambda, and cannot disturb the transport by using them."""
    os.fstat(fd)  # OSError (EBADF) if `fd` is not open: the caller decides (main: no withdraw pipe)
    for floor in (1000, 100, 10):
        try:
            high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
            break
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EMFILE):
                raise
            # EINVAL: the floor is at or above the descriptor limit; EMFILE: no free descriptor above it. Lower.
    else:
        high = os.dup(fd)  # the lowest free descriptor; non-inheritable as well
    os.close(fd)
    return high


_scan_json = json.decoder.JSONDecoder().scan_once


def _loads(data):
    """json.loads for the common case (a compact JSON text), at a fraction of its per-call cost."""
    text = data.decode("utf-8")
    try:
        value, end = _scan_json(text, 0)
        if end == len(text):
            return value
    except StopIteration:
        pass
    return json.loads(text)  # whitespace around the value, or the precise error


def _parse_header(header):
    """(request id, deadline ms, function arn, client context dict, trace id or None); parsed as the request starts."""
    now_ms = int(time.time() * 1000)
    if header[:1] == b"{":
        h = json.loads(header)
        return h["id"], now_ms + h["timeout"], h["arn"], h.get("cc"), h.get("trace")
    timeout, attempt, arn, invoke_id, session_id, task_id = header.decode("utf-8").split("\t", 5)
    custom = {"session_id": session_id, "task_id": task_id, "attempt": int(attempt)}
    return invoke_id, now_ms + int(timeout), arn, {"custom": custom}, None


def _serve(request_handler):
    global _request_id, _started
    reader = open(_request_fd, "rb", buffering=1 << 16, closefd=False)
    read = reader.read
    unpack = _REQ.unpack
    number = 0
    withdrawn = _withdrawn
    lock = _start_lock
    withdrawals = _withdrawals
    while True:
        if withdrawals is not None and withdrawals.restart_due:
            withdrawals.resume()
        prefix = read(8)
        if not prefix or len(prefix) < 8:
            return
        header_len, body_len = unpack(prefix)
        payload = read(header_len + body_len)
        if payload is None or len(payload) < header_len + body_len:
            return
        number += 1
        # Again here, not only before read(8): a fork made while this loop waited for the request (by a thread of the
        # worker's own) stopped the thread, and this request must not run with take-backs stopped because of it.
        if withdrawals is not None and withdrawals.restart_due:
            withdrawals.resume()
        with lock:
            if number in withdrawn:
                withdrawn.discard(number)
                continue  # taken back while it waited: the invoker runs it elsewhere
            _started = number
        invoke_id, deadline, arn, client_context, trace_id = _parse_header(payload[:header_len])
        _request_id = invoke_id
        if trace_id is not None:
            os.environ["_X_AMZN_TRACE_ID"] = trace_id
        try:
            context = LambdaContext(invoke_id, client_context, deadline, arn)
            try:
                event = _loads(payload[header_len:])
            except Exception as e:
                raise FaultException(FaultException.UNMARSHAL_ERROR, "Unable to unmarshal input: {}".format(str(e)))
            result = _marshal(request_handler(event, context))
        except FaultException as e:
            error = _make_error(e.msg, e.exception_type, e.trace)
            _log_error(error)
            _send(KIND_ERROR, _error_body(error))
        except Exception as e:
            error = _error_from_exception(e)
            _log_error(error)
            _send(KIND_ERROR, _error_body(error))
        else:
            _send(KIND_RESULT, result)
        _request_id = ""


_stdout = None
_stderr = None


def main():
    global _stdout, _stderr, _request_fd, _response_fd, _withdrawals
    # The transport moves out of the worker's way before its module is imported (see _move_fd).
    _request_fd = _move_fd(REQUEST_FD)
    _response_fd = _move_fd(RESPONSE_FD)
    try:
        withdraw_fd = _move_fd(WITHDRAW_FD)
    except OSError as e:
        if e.errno != errno.EBADF:
            raise
        withdraw_fd = None  # started without a withdraw pipe (fd 5 not open)
    if withdraw_fd is not None:
        _withdrawals = _Withdrawals(withdraw_fd)
        os.register_at_fork(
            before=_withdrawals.before_fork,
            after_in_parent=_withdrawals.after_fork_in_parent,
            after_in_child=_withdrawals.after_fork_in_child,
        )
    # Our own process group (not session: setsid would cost latency), so a kill reaches what the worker started.
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    task_root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    # As in Lambda: the task root first, and never this bootstrap's own folder.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [task_root] + [p for p in sys.path if p and os.path.abspath(p) != here and p != task_root]
    _stdout = _CountingStream(sys.stdout, 1)
    _stderr = _CountingStream(sys.stderr, 2)
    sys.stdout = _stdout
    sys.stderr = _stderr
    _setup_logging()
    try:
        request_handler = _get_handler(os.environ.get("_HANDLER", ""))
    except FaultException as e:
        _send(KIND_INIT_ERROR, _error_body(_make_error(e.msg, e.exception_type, e.trace)))
        sys.exit(1)
    except Exception as e:
        _send(KIND_INIT_ERROR, _error_body(_error_from_exception(e)))
        sys.exit(1)
    _send(KIND_READY, PROTOCOL_VERSION)
    if _withdrawals is not None:
        _withdrawals.start()
    _serve(request_handler)


if __name__ == "__main__":
    main()
