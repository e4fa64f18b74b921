from hypothesis import settings

# as the other members' tests: no deadline (the default 200 ms is a timing test on a shared
# two-core machine) and no example database (it would write .hypothesis/ into the checkout)
settings.register_profile("prom-answer", database=None, deadline=None)
settings.load_profile("prom-answer")
