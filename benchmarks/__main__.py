from . import client_read, simulator_read

simulator_read.main([])
client_read.main([])
