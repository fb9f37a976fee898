package event

import "testing"

func TestOrder(t *testing.T) {
	var q Queue
	q.Push(10, Schedule, 1)
	q.Push(10, Arrival, 2)
	q.Push(5, BatchEnd, 3)
	q.Push(10, BatchEnd, 4)
	q.Push(10, Arrival, 5)
	var got []int64
	for {
		e, ok := q.Pop()
		if !ok {
			break
		}
		got = append(got, e.Ref)
	}
	want := []int64{3, 2, 5, 4, 1}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order = %v, want %v", got, want)
		}
	}
}

func TestClockNeverBackwards(t *testing.T) {
	var q Queue
	q.Push(10, Arrival, 0)
	q.Pop()
	defer func() {
		if recover() == nil {
			t.Fatal("pushing into the past did not panic")
		}
	}()
	q.Push(9, Arrival, 0)
}
