"""Writing output files safely: every file polyfleet writes goes through ``write_output``."""

from polyfleet.io.atomic import OutputError, check_output, write_output, write_output_text

__all__ = ["OutputError", "check_output", "write_output", "write_output_text"]
