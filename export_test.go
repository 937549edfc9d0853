package rack

// StopLeaseForTest makes k stop renewing its lease, as a kernel that died
// would, while it goes on running.
func (k *Kernel) StopLeaseForTest() { k.leaseOff.Store(true) }
