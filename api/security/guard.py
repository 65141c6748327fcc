"""The authoritative check: an app-wide dependency that runs after routing on every API route.

``create_app`` passes :func:`authorize` to ``FastAPI(dependencies=...)``, so it runs first on
every route of every router included afterwards (and on routes added to the app later): it
sees the route that was really chosen (``request.scope["route"].path``), asks the policy,
records the decision for the audit row and refuses with 401/403, or 429 past a rate limit.
A route the policy does not name is refused for everyone.
"""

from __future__ import annotations

from fastapi import Request

from api.security.middleware import DECISION_KEY, RETRY_KEY
from api.security.policy import Policy
from api.security.ratelimit import RateLimiter
from schemas.accounts import ANONYMOUS, Principal
from schemas.catalog import Catalog
from schemas.errors import Forbidden, TooManyRequests, Unauthenticated


async def authorize(request: Request) -> None:
    """Refuse the request unless the policy allows its caller on this route."""
    state = request.scope.setdefault("state", {})
    principal: Principal = state.get("principal") or ANONYMOUS
    policy: Policy = request.app.state.policy
    catalog: Catalog = request.app.state.catalog
    route = request.scope.get("route")
    template = str(getattr(route, "path", "") or request.url.path)
    method = request.method
    decision = policy.decide(
        principal,
        method=method,
        template=template,
        rule=policy.rule(template, method),
        path_params=request.path_params,
        query=request.query_params.multi_items(),
        catalog=catalog,
    )
    state[DECISION_KEY] = decision
    if not decision.allowed:
        if decision.status == 401:
            raise Unauthenticated(decision.reason)
        raise Forbidden(decision.reason)
    if decision.rate_limit is not None:
        limiter: RateLimiter = request.app.state.rate_limiter
        client = request.client.host if request.client else "?"
        wait = limiter.hit(
            (decision.action, client),
            requests=decision.rate_limit.requests,
            seconds=decision.rate_limit.seconds,
        )
        if wait is not None:
            state[RETRY_KEY] = wait
            raise TooManyRequests(
                f"too many requests to {decision.action}; try again in {wait} s", retry_after=wait
            )
