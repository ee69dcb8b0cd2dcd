"""Conversion of a torch module into each runtime's file format (fp32 and int8), one module per
format. Below both the latency backends (which convert blocks to time them) and export (which
converts the chosen subnet), so each conversion exists once."""
