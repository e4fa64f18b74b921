from hypothesis import settings

# no example database: it would write .hypothesis/ into the shared checkout
settings.register_profile("scenario-gen", database=None, deadline=None)
settings.load_profile("scenario-gen")
