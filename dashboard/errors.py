"""The dashboard's exceptions, all under one root::

DashboardError
└── BadPid          a pid string from a client that is not ``<0.N.0>``
"""

from __future__ import annotations

from ..errors import AlightError


class DashboardError(AlightError):
    """Root of every exception the dashboard raises."""


class BadPid(DashboardError, ValueError):  # noqa: N818 - says what is wrong, as InvalidChildSpec
    """A client sent a pid that is not of the form ``<0.N.0>``; answer with an error reply."""
