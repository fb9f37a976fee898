// Package event is the simulator's clock and event queue. Events are ordered
// by (time, priority class, sequence number) so that a run is a pure function
// of its inputs: two events at the same nanosecond never race, and the clock
// refuses to move backwards.
package event

import (
	"fmt"
)

// Class orders events that fall on the same nanosecond. Lower runs first.
// Arrivals come before batch ends so that a request arriving exactly when an
// iteration ends is visible to the scheduler that runs next (Vidur orders its
// REQUEST_ARRIVAL < BATCH_END < REPLICA_SCHEDULE the same way).
type Class uint8

const (
	Arrival  Class = iota // a request reaches the engine
	BatchEnd              // an iteration finishes; its tokens exist
	Schedule              // the scheduler picks the next iteration
)

func (c Class) String() string {
	switch c {
	case Arrival:
		return "arrival"
	case BatchEnd:
		return "batch-end"
	case Schedule:
		return "schedule"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Event is one scheduled happening. Ref is an opaque index the engine gives
// meaning to (a request index for arrivals, unused otherwise).
type Event struct {
	Time  int64
	Class Class
	Seq   uint64
	Ref   int64
}

// Less is the total order of events.
func (e Event) Less(o Event) bool {
	if e.Time != o.Time {
		return e.Time < o.Time
	}
	if e.Class != o.Class {
		return e.Class < o.Class
	}
	return e.Seq < o.Seq
}

// Queue is a priority queue of events with a monotonic clock.
type Queue struct {
	h   evHeap
	seq uint64
	now int64
}

// Now is the time of the last popped event.
func (q *Queue) Now() int64 { return q.now }

// Len is the number of pending events.
func (q *Queue) Len() int { return len(q.h) }

// Push schedules an event. Scheduling into the past is a bug in the caller:
// it would make the clock run backwards, so it panics.
func (q *Queue) Push(t int64, c Class, ref int64) {
	if t < q.now {
		panic(fmt.Sprintf("event: %s scheduled at %d ns, before now (%d ns)", c, t, q.now))
	}
	q.seq++
	q.h = append(q.h, Event{Time: t, Class: c, Seq: q.seq, Ref: ref})
	q.up(len(q.h) - 1)
}

// Pop removes the earliest event and advances the clock to it.
func (q *Queue) Pop() (Event, bool) {
	if len(q.h) == 0 {
		return Event{}, false
	}
	e := q.h[0]
	last := len(q.h) - 1
	q.h[0] = q.h[last]
	q.h = q.h[:last]
	if last > 0 {
		q.down(0)
	}
	if e.Time < q.now {
		panic(fmt.Sprintf("event: clock would run backwards from %d to %d ns", q.now, e.Time))
	}
	q.now = e.Time
	return e, true
}

// Peek returns the earliest event without removing it.
func (q *Queue) Peek() (Event, bool) {
	if len(q.h) == 0 {
		return Event{}, false
	}
	return q.h[0], true
}

// The heap is hand-written rather than container/heap so that pushing an
// event does not box it into an interface (an allocation per event).
type evHeap []Event

func (q *Queue) up(i int) {
	h := q.h
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].Less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *Queue) down(i int) {
	h := q.h
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h[r].Less(h[l]) {
			m = r
		}
		if !h[m].Less(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
