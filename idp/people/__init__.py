"""Who a person is, for one org: the one resolver every way in calls, and signing in."""
