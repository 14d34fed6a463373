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
import decimal
import importlib
import json
import logging
import os
import struct
import sys
import threading
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


# The main loop and the withdraw thread both write frames.
_send_lock = threading.Lock()


def _send(kind, body):
    out_count = _stdout.count
    err_count = _stderr.count
    _stdout.count = 0
    _stderr.count = 0
    _write_frame(_HEAD.pack(len(body) + 9, kind, min(out_count, _U32), min(err_count, _U32)) + body)


def _write_frame(frame):
    with _send_lock:
        written = os.write(RESPONSE_FD, frame)
        if written < len(frame):
            view = memoryview(frame)[written:]
            while view:
                view = view[os.write(RESPONSE_FD, view) :]


# Requests are numbered in the order read (1, 2, ...). Under `_start_lock`: the number of the last one started, and
# the numbers withdrawn before they started (the main loop drops each as it reads it).
_start_lock = threading.Lock()
_started = 0
_withdrawn = set()


def _serve_withdrawals():
    """The withdraw thread: takes back each request that has not started, and says so."""
    global _started
    pending = b""
    while True:
        try:
            chunk = os.read(WITHDRAW_FD, 4096)
        except OSError:
            return  # no withdraw pipe (an invoker that never withdraws)
        if not chunk:
            return
        pending += chunk
        while len(pending) >= 4:
            (number,) = _U32_STRUCT.unpack(pending[:4])
            pending = pending[4:]
            with _start_lock:
                if number <= _started or number in _withdrawn:
                    continue  # it started (its answer follows) or was taken back already
                _withdrawn.add(number)
                # Written before the main loop can go past this request: the invoker matches answers to requests by
                # their order, so a later request's answer sent ahead of this frame would be taken for this one's.
                # (The main loop never waits for this lock while it holds the send lock: no deadlock.)
                body = str(number).encode("ascii")
                _write_frame(_HEAD.pack(len(body) + 9, KIND_WITHDRAWN, 0, 0) + body)



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
    reader = open(REQUEST_FD, "rb", buffering=1 << 16, closefd=False)
    read = reader.read
    unpack = _REQ.unpack
    number = 0
    withdrawn = _withdrawn
    lock = _start_lock
    while True:
        prefix = read(8)
        if not prefix or len(prefix) < 8:
            return
        header_len, body_len = unpack(prefix)
        payload = read(header_len + body_len)
        if payload is None or len(payload) < header_len + body_len:
            return
        number += 1
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
    global _stdout, _stderr
    # The transport fds must not leak into processes the worker starts (os.system, ...).
    os.set_inheritable(REQUEST_FD, False)
    os.set_inheritable(RESPONSE_FD, False)
    try:
        os.set_inheritable(WITHDRAW_FD, False)
    except OSError:
        pass  # started without a withdraw pipe
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
    threading.Thread(target=_serve_withdrawals, name="htcgrid-withdraw", daemon=True).start()
    _serve(request_handler)


if __name__ == "__main__":
    main()
