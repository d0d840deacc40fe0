from . import simulator_read

simulator_read.main([])
