# C tests; owned by tests/.  Defines c-programs prerequisites and test-c.
c-programs::
test-c::
