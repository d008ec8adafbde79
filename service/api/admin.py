"""``/v1/admin``: operator actions. Every handler carries ``opt["scope"] = "admin"``.

Guard it in one place: a guard (or the auth middleware) that reads ``route_handler.opt["scope"]``
and refuses callers without that scope covers this whole controller.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import cast

from litestar import Controller, Response, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from service.core.base import Base
from service.governance.reload import ReloadReport, TableReloader
from service.metrics.tables import ReloadResult

__all__ = ["ADMIN_SCOPE", "AdminController", "ReloadRefused"]

ADMIN_SCOPE = "admin"
"""API-key scope every admin action needs."""


class ReloadRefused(Base):
    """Problem document for refused tables: the reasons, and the sets that stay in force."""

    status: int
    title: str
    detail: str
    report: ReloadReport


class AdminController(Controller):
    """Operator actions on the running service."""

    path = "/v1/admin"
    tags = ["admin"]
    opt = {"scope": ADMIN_SCOPE}

    @post(
        "/tables/reload",
        status_code=200,
        summary="Reload the table sets from disk",
        responses={
            422: ResponseSpec(
                data_container=ReloadRefused,
                description="The files are invalid: every problem, and the sets that stay.",
                media_type="application/problem+json",
            )
        },
    )
    async def reload_tables(self, state: State) -> Response[ReloadReport]:
        """Read ``tables/`` again and swap in the sets if they are valid and changed.

        200 with ``result`` ``success`` (swapped) or ``unchanged``; 422 listing every problem
        when the files are invalid, in which case the running sets stay in force.
        """
        reloader: TableReloader = state.reloader
        report = await reloader.areload("admin")
        if report.result in (ReloadResult.SUCCESS, ReloadResult.UNCHANGED):
            return Response(report, status_code=200)
        refused = ReloadRefused(
            status=422,
            title=HTTPStatus(422).phrase,
            detail=(
                f"tables refused: {len(report.problems)} problem(s); "
                f"{report.active} {report.hash} stays in force"
            ),
            report=report,
        )
        problem = Response(refused, status_code=422, media_type="application/problem+json")
        return cast("Response[ReloadReport]", problem)  # documented above as the 422 body
