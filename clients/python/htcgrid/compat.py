"""HTC-Grid's ``AWSConnector`` on this grid: its method names and return shapes, so its clients run unchanged.

Replace ``from api.connector import AWSConnector`` with ``from htcgrid.compat import AWSConnector``; the client
configuration (``AGENT_CONFIG_FILE``) is ``<grid dir>/client.json`` for a local grid, or the stack outputs of a deployed
one (``cdk deploy --outputs-file``). Like HTC-Grid's connector, importing this module logs at INFO to the root logger
(``logging.basicConfig``: nothing changes when logging is already configured).
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Dict, List, Mapping, Optional

from .grid import Grid, Session

logging.basicConfig(
    format="%(asctime)s - %(levelname)s - %(filename)s - %(funcName)s  - %(lineno)d - %(message)s",
    datefmt="%H:%M:%S",
    level=logging.INFO,
)
_log = logging.getLogger("htcgrid.compat")

#: HTC-Grid's state names in ``get_results``: ours are succeeded, failed and cancelled.
_STATE_KEYS = {"succeeded": "finished", "failed": "failed", "cancelled": "cancelled"}


class AWSConnector:
    """HTC-Grid's client connector, speaking this grid's HTTP API."""

    def __init__(self) -> None:
        self._grid: Optional[Grid] = None
        self._pull_interval_sec = 0.5

    def init(
        self,
        agent_config_data: Mapping[str, Any],
        username: str = "",
        password: str = "",
        cognitoidp_client: Any = None,
        s3_custom_resource: Any = None,
        redis_custom_connection: Any = None,
    ) -> None:
        """Connects with the client configuration (a dict, as HTC-Grid's clients load it from AGENT_CONFIG_FILE).

        ``username``/``password`` and the custom clients are HTC-Grid's Cognito, S3 and Redis hooks: this grid needs
        none of them (a local grid's token is in the configuration, AWS requests are signed with your credentials).
        """
        self._grid = Grid.connect(agent_config_data)
        self._pull_interval_sec = float(agent_config_data.get("dynamodb_results_pull_interval_sec", 0.5))
        _log.info("AWSConnector Initialized on %s", self._grid.url)

    def authenticate(self) -> None:
        """Nothing to do: the configuration's token (local) or SigV4 signing (AWS) authenticates every request."""
        _log.info("authenticated by %s", "token or SigV4")

    @property
    def grid(self) -> Grid:
        if self._grid is None:
            raise RuntimeError("call init(config) first")
        return self._grid

    def generate_user_task_json(self, tasks_list: Optional[List[Any]] = None) -> Dict[str, Any]:
        """HTC-Grid's submission object; ``submit`` takes it."""
        now = int(round(time.time() * 1000))
        return {
            "session_id": str(uuid.uuid4()),
            "scheduler_data": {"task_timeout_sec": None, "retry_count": None},
            "stats": {"stage1_grid_api_01_task_creation_tstmp": {"label": " ", "tstmp": now}},
            "tasks_list": {"tasks": list(tasks_list or [])},
        }

    def send(self, tasks_list: List[Any]) -> Dict[str, Any]:
        """Submits the tasks; returns ``{"session_id", "task_ids"}``."""
        _log.info("Init send %d tasks", len(tasks_list))
        return self.submit(self.generate_user_task_json(tasks_list))

    def submit(self, jobs: Mapping[str, Any]) -> Dict[str, Any]:
        """Submits a submission object of ``generate_user_task_json``."""
        tasks = jobs["tasks_list"]["tasks"]
        session = self.grid.submit(tasks, session_id=jobs.get("session_id"))
        response = {"session_id": session.session_id, "task_ids": session.task_ids}
        _log.info("json_response = %s", response)
        return response

    def get_results(self, submission_response: Mapping[str, Any], timeout_sec: float = 0) -> Dict[str, Any]:
        """Waits until every task of the submission has finished (or ``timeout_sec`` passed; 0 waits for ever).

        Returns ``{"finished": [task ids], "finished_OUTPUT": [JSON text of each result], "failed",
        "failed_OUTPUT" (the error as Lambda reports it, JSON), "cancelled", "cancelled_OUTPUT",
        "metadata": {"tasks_in_response": n}}``, as HTC-Grid does.
        """
        session = Session(self.grid._http, submission_response["session_id"])
        expected = len(submission_response["task_ids"])
        start = time.time()
        while True:
            status = session.status()
            if status.finished >= expected:
                break
            if 0 < timeout_sec < time.time() - start:
                _log.error("Get Results Timed Out")
                break
            time.sleep(self._pull_interval_sec)
        response: Dict[str, Any] = {
            "finished": [],
            "finished_OUTPUT": [],
            "cancelled": [],
            "cancelled_OUTPUT": [],
            "failed": [],
            "failed_OUTPUT": [],
        }
        for result in session.results(wait_sec=0, progress=False):
            key = _STATE_KEYS[result.state]
            response[key].append(result.task_id)
            if result.state == "succeeded":
                response[key + "_OUTPUT"].append(result.result_json)
            elif result.error is not None:
                error = {"errorType": result.error.type, "errorMessage": result.error.message, "stackTrace": result.error.stack}
                response[key + "_OUTPUT"].append(json.dumps(error))
            else:
                response[key + "_OUTPUT"].append(json.dumps({"state": result.state}))
        response["metadata"] = {
            "tasks_in_response": len(response["finished"]) + len(response["failed"]) + len(response["cancelled"])
        }
        _log.info("Finish get_results")
        return response

    def invoke_get_results_lambda(self, session_id: Mapping[str, Any]) -> Dict[str, Any]:
        """The session's counts in ``get_results``' shape, without outputs (HTC-Grid's polling call)."""
        status = Session(self.grid._http, session_id["session_id"]).status()
        return {"metadata": {"tasks_in_response": status.finished}, "counts": status.counts}

    def cancel_sessions(self, session_ids: List[str]) -> Dict[str, Dict[str, int]]:
        """Cancels each session; per session ``{"cancelled_pending", "cancelled_processing", "cancelled_retrying",
        "total_cancelled_tasks"}`` as HTC-Grid counts them."""
        response: Dict[str, Dict[str, int]] = {}
        for session_id in session_ids:
            answer, _ = self.grid._http.json("POST", "/v1/sessions/%s/cancel" % session_id, {})
            total = int(answer["cancelled"])
            running = min(total, int(answer["before"]["running"]))
            response[session_id] = {
                "cancelled_retrying": 0,
                "cancelled_pending": total - running,
                "cancelled_processing": running,
                "total_cancelled_tasks": total,
            }
        _log.info("Finish cancel session")
        return response

    def cancel(self, session_id: str) -> Dict[str, int]:
        """Cancels one session (a stub in HTC-Grid; here it cancels)."""
        return self.cancel_sessions([session_id])[session_id]
