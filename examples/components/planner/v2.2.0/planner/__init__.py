"""planner: plans the rover's routes as messages.Plan.

    plan = planner.plan_route(start=(0.0, 0.0), goal=(3.0, 4.0))
"""

from planner.route import CRUISE_SPEED, MAX_LEG, plan_route

__version__ = "2.2.0"

__all__ = ["CRUISE_SPEED", "MAX_LEG", "plan_route"]
