package executor

import (
	"runtime"
	"sync"
)

// decideAll calls decide for the selected instances, several at once, each
// only after every one of its inputs has been decided: in a no-op run or a
// status of a big sweep, checking objects is nearly all the work, and the
// instances of a matrix are independent. With throughUnfinished false (a
// run) it stops at an instance whose input must run first: that one is
// decided when the input has run. It returns the decisions by instance; the
// caller owns what they say (a run links and records them).
func (g *graph) decideAll(opt *Options, throughUnfinished bool, after func(*node, Decision)) map[*node]Decision {
	out := make(map[*node]Decision, len(g.nodes))
	waiting := make(map[*node]int, len(g.nodes))
	dependents := map[*node][]*node{}
	var ready []*node
	for _, n := range g.nodes {
		if !n.selected || n.decided {
			continue
		}
		k := 0
		for _, d := range n.inst.Needs {
			for _, id := range d.Instances {
				up := g.byID[id]
				if up.decided && (throughUnfinished || up.state == done) {
					continue
				}
				if up.decided {
					k = -1 // an input must run first; never ready here
					break
				}
				dependents[up] = append(dependents[up], n)
				k++
			}
			if k < 0 {
				break
			}
		}
		if k < 0 {
			continue
		}
		waiting[n] = k
		if k == 0 {
			ready = append(ready, n)
		}
	}
	workers := runtime.GOMAXPROCS(0)
	if opt.Jobs > 0 && opt.Jobs < workers {
		workers = opt.Jobs
	}
	todo := make(chan *node)
	type res struct {
		n *node
		d Decision
	}
	results := make(chan res)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range todo {
				d := g.decide(n, opt)
				if after != nil {
					after(n, d)
				}
				results <- res{n, d}
			}
		}()
	}
	inFlight := 0
	for len(ready) > 0 || inFlight > 0 {
		var send chan *node
		var next *node
		if len(ready) > 0 {
			send, next = todo, ready[len(ready)-1]
		}
		select {
		case send <- next:
			ready = ready[:len(ready)-1]
			inFlight++
		case r := <-results:
			inFlight--
			out[r.n] = r.d
			for _, dep := range dependents[r.n] {
				if waiting[dep] < 0 {
					continue
				}
				if !throughUnfinished && r.n.state != done {
					waiting[dep] = -1
					continue
				}
				waiting[dep]--
				if waiting[dep] == 0 {
					ready = append(ready, dep)
				}
			}
		}
	}
	close(todo)
	wg.Wait()
	return out
}
