package gpus

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const smi4 = `GPU 0: NVIDIA H200 (UUID: GPU-aaaa)
GPU 1: NVIDIA H200 (UUID: GPU-bbbb)
  MIG 1g.18gb     Device  0: (UUID: MIG-xxxx)
GPU 2: NVIDIA H200 (UUID: GPU-cccc)
GPU 3: NVIDIA H200 (UUID: GPU-dddd)
`

func env(m map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func smi(out string) SMI {
	return func() (string, error) {
		if out == "" {
			return "", errors.New("nvidia-smi: not found")
		}
		return out, nil
	}
}

func TestParseSMI(t *testing.T) {
	got := ParseSMI(smi4)
	want := []Device{{"0", "GPU-aaaa", "NVIDIA H200"}, {"1", "GPU-bbbb", "NVIDIA H200"}, {"2", "GPU-cccc", "NVIDIA H200"}, {"3", "GPU-dddd", "NVIDIA H200"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
	if got := ParseSMI("GPU 0: Tesla T4\n"); len(got) != 1 || got[0].Name != "Tesla T4" || got[0].UUID != "" {
		t.Errorf("line without UUID: %+v", got)
	}
}

func TestVisible(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		smi  string
		ids  []string
		src  Source
	}{
		{"smi lists all", nil, smi4, []string{"0", "1", "2", "3"}, FromSMI},
		{"env wins", map[string]string{"CUDA_VISIBLE_DEVICES": "2,3"}, smi4, []string{"2", "3"}, FromEnv},
		{"env by uuid", map[string]string{"CUDA_VISIBLE_DEVICES": "GPU-bbbb"}, smi4, []string{"GPU-bbbb"}, FromEnv},
		{"env empty hides all", map[string]string{"CUDA_VISIBLE_DEVICES": ""}, smi4, nil, FromNone},
		{"invalid index ends the list", map[string]string{"CUDA_VISIBLE_DEVICES": "1,-1,2"}, smi4, []string{"1"}, FromEnv},
		{"env without smi", map[string]string{"CUDA_VISIBLE_DEVICES": "0,1"}, "", []string{"0", "1"}, FromEnv},
		{"no gpu", nil, "", nil, FromNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			devs, src := Visible(env(tc.env), smi(tc.smi))
			var ids []string
			for _, d := range devs {
				ids = append(ids, d.ID)
			}
			if !reflect.DeepEqual(ids, tc.ids) || src != tc.src {
				t.Errorf("got %v from %s, want %v from %s", ids, src, tc.ids, tc.src)
			}
		})
	}
	devs, _ := Visible(env(map[string]string{"CUDA_VISIBLE_DEVICES": "2"}), smi(smi4))
	if devs[0].UUID != "GPU-cccc" || devs[0].LockName() != "GPU-cccc" {
		t.Errorf("index not resolved to its UUID: %+v", devs[0])
	}
}

func TestSelect(t *testing.T) {
	four := ParseSMI(smi4)
	for _, tc := range []struct {
		flag    string
		visible []Device
		ids     []string
		count   int
		err     string
	}{
		{"", four, []string{"0", "1", "2", "3"}, 4, ""},
		{"", nil, []string{}, 1, ""},
		{"2", four, []string{"0", "1"}, 2, ""},
		{"3", nil, []string{}, 3, ""},
		{"0,2,3", four, []string{"0", "2", "3"}, 3, ""},
		{"device=2", four, []string{"2"}, 1, ""},
		{"2,", four, []string{"2"}, 1, ""},
		{"GPU-dddd,0", four, []string{"3", "0"}, 2, ""},
		{"0,1", nil, []string{"0", "1"}, 2, ""},
		{"5", four, nil, 0, "only 4 GPU(s) visible (0,1,2,3, from nvidia-smi -L); give at most 4"},
		{"0", four, nil, 0, "want at least 1"},
		{"0,7", four, nil, 0, "device 7 is not visible (visible: 0,1,2,3"},
		{"0,0", four, nil, 0, "device 0 listed twice"},
		{"0,GPU-aaaa", four, nil, 0, "device GPU-aaaa listed twice"},
		{"two", four, nil, 0, "want a count (2), a list of devices"},
		{"0,x", nil, nil, 0, `"x" is neither a device index nor a UUID`},
		{"0,,1", four, nil, 0, "an empty entry"},
		{"device=", four, nil, 0, "name at least one device"},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			s, err := Select(tc.flag, tc.visible, FromSMI)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ids := s.IDs(); !reflect.DeepEqual(ids, tc.ids) || s.Count != tc.count {
				t.Errorf("got %v count %d, want %v count %d", ids, s.Count, tc.ids, tc.count)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	if got := Env([]string{"2", "3"}, false); !reflect.DeepEqual(got, []string{"CUDA_VISIBLE_DEVICES=2,3", "CUDA_DEVICE_ORDER=PCI_BUS_ID"}) {
		t.Errorf("got %v", got)
	}
	if got := Env([]string{"2"}, true); !reflect.DeepEqual(got, []string{"CUDA_VISIBLE_DEVICES=2"}) {
		t.Errorf("user's order kept: %v", got)
	}
	if Env(nil, false) != nil {
		t.Error("no devices: no environment")
	}
}
