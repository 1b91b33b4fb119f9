"""The README's "Testing your handlers" example, collected in this session.

Its module-level ``ocpp_handler`` fixture applies to this module only.
"""

from .readme_example import (  # noqa: F401  (collected: the example's tests and fixture)
    ocpp_handler,
    test_any_valid_meter_values_is_accepted,
    test_boot_then_configuration,
    test_two_stations_on_a_real_server,
)
