"""The check of which role may take which action on a case (``case_actions`` in policy.yaml).

The route rule of ``POST /cases/{case_id}/transitions`` lets a role in; the policy's
``case_actions`` table (:meth:`api.security.policy.Policy.case_action_roles`) says which
actions it may take there. The answer can depend on the case's status (``return`` is the
handler's from dispatched/handling, the follow-up visit's from resolved/visited), so the
workflow calls the :data:`cases.workflow.Permit` made here under the case's row lock, after
scoping (:func:`cases.workflow.apply`). A refusal is a 403 naming the action and the role; the
request's audit row records the action, the status it met and the refusal.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from api.security.middleware import DETAIL_KEY
from api.security.policy import Policy
from cases.models import Status
from cases.workflow import Action, Permit
from schemas.accounts import ANONYMOUS, Principal


def case_action_permit(request: Request) -> Permit:
    """Return the check :func:`cases.workflow.apply` runs for this request's caller."""
    state: dict[str, Any] = request.scope.setdefault("state", {})
    principal: Principal = state.get("principal") or ANONYMOUS
    policy: Policy = request.app.state.policy

    def permit(status: Status, action: Action) -> str | None:
        roles = policy.case_action_roles(action, status)
        detail: dict[str, Any] = {"case_action": action.value, "case_status": status.value}
        if principal.role in roles:
            state[DETAIL_KEY] = detail
            return None
        allowed = ", ".join(sorted(r.value for r in roles)) or "nobody"
        reason = (
            f"the role {principal.role.value} may not {action.value} a case that is "
            f"{status.value} (allowed: {allowed})"
        )
        state[DETAIL_KEY] = {**detail, "refused": reason}
        return reason

    return permit
