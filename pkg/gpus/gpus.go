// Package gpus finds the GPUs a gsim run may use and reads --gpus, so that
// each GPU slot of the executor is one specific device: a GPU stage runs
// with CUDA_VISIBLE_DEVICES set to the device (or devices) its slot holds.
package gpus

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/gsim-dev/gsim/internal/lazyre"
)

// Device is one GPU as CUDA_VISIBLE_DEVICES names it.
type Device struct {
	// ID is the value CUDA_VISIBLE_DEVICES takes: an index as nvidia-smi
	// numbers the GPUs (in PCI bus order) or a UUID (GPU-…, MIG-…).
	ID string
	// UUID is the device's UUID where nvidia-smi told it; it names the
	// device's slot lock, so two gsim processes that call one GPU by index
	// and by UUID still take turns.
	UUID string
	Name string
}

// LockName is the name the device's machine-wide slot lock is made from.
func (d Device) LockName() string {
	if d.UUID != "" {
		return d.UUID
	}
	return d.ID
}

// Env is the environment a stage holding devs runs with: CUDA numbers the
// devices it sees from 0, so the stage's device 0 is devs[0]. Indices are
// nvidia-smi's (PCI bus order) unless the user chose CUDA_DEVICE_ORDER.
func Env(devs []string, userOrder bool) []string {
	if len(devs) == 0 {
		return nil
	}
	env := []string{"CUDA_VISIBLE_DEVICES=" + strings.Join(devs, ",")}
	if !userOrder {
		env = append(env, "CUDA_DEVICE_ORDER=PCI_BUS_ID")
	}
	return env
}

// Source says where the visible devices came from.
type Source string

const (
	FromEnv  Source = "CUDA_VISIBLE_DEVICES"
	FromSMI  Source = "nvidia-smi -L"
	FromNone Source = "none visible"
)

// Lookup reads the environment (os.LookupEnv in gsim).
type Lookup func(string) (string, bool)

// SMI lists the machine's GPUs as `nvidia-smi -L` prints them; an error
// means none can be listed (no driver, no nvidia-smi).
type SMI func() (string, error)

// NvidiaSMI runs nvidia-smi -L, giving up after a few seconds (a hung
// driver must not hang gsim).
func NvidiaSMI() (string, error) {
	path, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-L").Output()
	return string(out), err
}

var smiLine = lazyre.New(`^GPU (\d+): (.*?)(?: \(UUID: ([^)]+)\))?\s*$`)

// ParseSMI reads `nvidia-smi -L` output: "GPU 0: NVIDIA H200 (UUID: GPU-…)".
// MIG lines (indented) are not GPUs of their own here.
func ParseSMI(out string) []Device {
	var devs []Device
	for _, l := range strings.Split(out, "\n") {
		m := smiLine.FindStringSubmatch(strings.TrimRight(l, "\r"))
		if m == nil {
			continue
		}
		devs = append(devs, Device{ID: m[1], Name: m[2], UUID: m[3]})
	}
	return devs
}

// Visible is the GPUs this process may use: CUDA_VISIBLE_DEVICES when it is
// set (a scheduler or the user chose them; an empty value hides all), else
// every GPU nvidia-smi lists. With nvidia-smi's list at hand, devices named
// by index get their UUID (for the lock) and name.
func Visible(env Lookup, smi SMI) ([]Device, Source) {
	var listed []Device
	if out, err := smi(); err == nil {
		listed = ParseSMI(out)
	}
	v, set := env("CUDA_VISIBLE_DEVICES")
	if !set {
		if len(listed) == 0 {
			return nil, FromNone
		}
		return listed, FromSMI
	}
	var devs []Device
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		// CUDA stops at the first invalid index: nothing after it is seen.
		if n, err := strconv.Atoi(f); err == nil && n < 0 {
			break
		}
		d := Device{ID: f}
		for _, l := range listed {
			if l.ID == f || strings.EqualFold(l.UUID, f) {
				d.UUID, d.Name = l.UUID, l.Name
			}
		}
		devs = append(devs, d)
	}
	if len(devs) == 0 {
		return nil, FromNone
	}
	return devs, FromEnv
}

// Slots is what --gpus resolves to.
type Slots struct {
	// Devices are the GPUs, one per slot; nil when no GPU is visible and
	// the slots are plain counters (GPU stages still run Count at a time,
	// with the environment as it is).
	Devices []Device
	Count   int
}

// IDs are the devices' CUDA_VISIBLE_DEVICES values.
func (s Slots) IDs() []string {
	out := make([]string, len(s.Devices))
	for i, d := range s.Devices {
		out[i] = d.ID
	}
	return out
}

// Describe says in a few words which GPUs a run uses, for its first lines.
func (s Slots) Describe(src Source) string {
	if len(s.Devices) == 0 {
		return fmt.Sprintf("%d slot(s), no GPU visible (GPU stages run %d at a time without CUDA_VISIBLE_DEVICES)", s.Count, s.Count)
	}
	parts := make([]string, len(s.Devices))
	for i, d := range s.Devices {
		parts[i] = d.ID
		if d.Name != "" {
			parts[i] += " (" + d.Name + ")"
		}
	}
	return fmt.Sprintf("%s [from %s]", strings.Join(parts, ", "), src)
}

// Select reads --gpus against the visible devices: "" means all of them
// (one counter slot when none is visible), a count N the first N, and a
// list such as "0,2,3" (indices or UUIDs) exactly those. One device is
// "device=2" (or "2,"), since a lone number is a count. Errors say what is
// visible and what to give instead.
func Select(flag string, visible []Device, src Source) (Slots, error) {
	flag = strings.TrimSpace(flag)
	list := false
	if rest, ok := strings.CutPrefix(flag, "device="); ok {
		flag, list = rest, true
	}
	if strings.HasSuffix(flag, ",") && !strings.HasSuffix(flag, ",,") {
		flag, list = strings.TrimSuffix(flag, ","), true
	}
	if flag == "" && list {
		return Slots{}, errors.New("--gpus device=: name at least one device, e.g. device=0")
	}
	if flag == "" {
		if len(visible) == 0 {
			return Slots{Count: 1}, nil
		}
		return Slots{Devices: visible, Count: len(visible)}, nil
	}
	if !list && !strings.Contains(flag, ",") && !isUUID(flag) {
		n, err := strconv.Atoi(flag)
		if err != nil {
			return Slots{}, fmt.Errorf("--gpus %s: want a count (2), a list of devices (0,2,3; one device: device=2) or nothing for every visible GPU", flag)
		}
		switch {
		case n < 1:
			return Slots{}, fmt.Errorf("--gpus %d: want at least 1", n)
		case len(visible) == 0:
			return Slots{Count: n}, nil
		case n > len(visible):
			return Slots{}, fmt.Errorf("--gpus %d: only %d GPU(s) visible (%s, from %s); give at most %d, or a list of devices", n, len(visible), ids(visible), src, len(visible))
		}
		return Slots{Devices: visible[:n], Count: n}, nil
	}
	var devs []Device
	seen := map[string]bool{}
	var errs []error
	for _, f := range strings.Split(flag, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			errs = append(errs, fmt.Errorf("--gpus %s: an empty entry; list devices as 0,2,3", flag))
			continue
		}
		d, ok := find(visible, f)
		switch {
		case !ok && len(visible) > 0:
			errs = append(errs, fmt.Errorf("--gpus %s: device %s is not visible (visible: %s, from %s)", flag, f, ids(visible), src))
			continue
		case !ok:
			if n, err := strconv.Atoi(f); err != nil && !isUUID(f) || err == nil && n < 0 {
				errs = append(errs, fmt.Errorf("--gpus %s: %q is neither a device index nor a UUID", flag, f))
				continue
			}
			d = Device{ID: f}
		}
		if seen[d.LockName()] {
			errs = append(errs, fmt.Errorf("--gpus %s: device %s listed twice", flag, f))
			continue
		}
		seen[d.LockName()] = true
		devs = append(devs, d)
	}
	if err := errors.Join(errs...); err != nil {
		return Slots{}, err
	}
	return Slots{Devices: devs, Count: len(devs)}, nil
}

func find(visible []Device, f string) (Device, bool) {
	for _, d := range visible {
		if d.ID == f || d.UUID != "" && strings.EqualFold(d.UUID, f) {
			return d, true
		}
	}
	return Device{}, false
}

func isUUID(s string) bool {
	u := strings.ToUpper(s)
	return strings.HasPrefix(u, "GPU-") || strings.HasPrefix(u, "MIG-")
}

func ids(devs []Device) string {
	s := make([]string, len(devs))
	for i, d := range devs {
		s[i] = d.ID
	}
	return strings.Join(s, ",")
}
