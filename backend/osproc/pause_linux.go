package osproc

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
)

// signalJob sends sig to the instance's process group (an instance leads
// its own: setAttrs) and to every process group its descendants lead, as
// a shell stops or continues a job. A program that runs a command in a
// group of its own (the shell's bridge does, to pass signals on to it)
// would otherwise go on running while its instance is stopped.
func signalJob(p *os.Process, sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return p.Signal(sig)
	}
	if err := syscall.Kill(-p.Pid, s); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	for _, g := range descendantGroups(p.Pid) {
		_ = syscall.Kill(-g, s) // gone since: nothing to stop
	}
	return nil
}

// descendantGroups returns the process groups, other than root's own,
// that descendants of process root lead, from one read of /proc.
func descendantGroups(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	type proc struct{ ppid, pgrp int }
	procs := make(map[int]proc, len(ents))
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, pgrp, ok := readStat(pid)
		if !ok {
			continue
		}
		procs[pid] = proc{ppid, pgrp}
		children[ppid] = append(children[ppid], pid)
	}
	var groups []int
	seen := map[int]bool{root: true}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			if seen[c] {
				continue
			}
			seen[c] = true
			if g := procs[c].pgrp; g == c && g != root {
				groups = append(groups, g)
			}
			queue = append(queue, c)
		}
	}
	return groups
}

// readStat returns the parent and process group of pid from
// /proc/PID/stat ("pid (comm) state ppid pgrp ..."; comm may hold spaces
// and parentheses: the fields follow its last ')').
func readStat(pid int) (ppid, pgrp int, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(data[i+1:])
	if len(f) < 3 {
		return 0, 0, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgrp, err2 := strconv.Atoi(string(f[2]))
	return ppid, pgrp, err1 == nil && err2 == nil
}
