package sseredis

import (
	"fmt"
	"strconv"
	"strings"

	"gin-sse-progress/sse"
)

// The keys and channels of client id. All of them carry the hash tag {id},
// so that they share a slot of a Redis Cluster and one script can touch
// them all.
//
//	sse:{id}        a hash: next (the number of the next event), first
//	                (that of the current run's first), finished, finalSent,
//	                gen (counts attaches, so that a newer stream replaces
//	                older ones on any instance)
//	sse:{id}:log    a Redis stream: the current run's events; entry 0-N is
//	                the event whose SSE id is N
//	sse:{id}:run    the token of the run that owns the client's work, with
//	                an expiry (the lease) that its owner renews
//
//	sse:{id}        channel: each event as it is logged, and the messages
//	                that end streams held by other instances
//	sse:{id}:owner  channel: the remove that stops a run on the instance
//	                that owns it; apart from sse:{id}, so that the number
//	                of instances listening there tells whether any holds a
//	                stream
func hashKey(id string) string      { return "sse:{" + id + "}" }
func logKey(id string) string       { return "sse:{" + id + "}:log" }
func runKey(id string) string       { return "sse:{" + id + "}:run" }
func channel(id string) string      { return "sse:{" + id + "}" }
func ownerChannel(id string) string { return "sse:{" + id + "}:owner" }

// runsIndex holds the runs that are going, each with the moment its owner's
// claim runs out (its score, in Unix ms). It is where an instance looks for
// runs whose owner went away, to take them over. Its key is not in any
// client's slot: it is an index, updated beside the scripts, not by them.
//
// A member is a run, not a client (runMember): the owner of a client's
// last run takes it out once it has finished, and that must not take out
// the client's next run, indexed by another instance meanwhile.
const runsIndex = "sse:runs"

// runMember names the run of client id under claim token in runsIndex.
func runMember(id, token string) string { return token + " " + id }

// parseRunMember returns the client and token of a runsIndex member; tokens
// have no space.
func parseRunMember(m string) (id, token string) {
	token, id, _ = strings.Cut(m, " ")
	return id, token
}

// handoverChannel is where an instance that shuts down names each run it
// let go of, for another instance to take over at once.
const handoverChannel = "sse:handover"

// clientOf returns the client id of a channel.
func clientOf(ch string) string {
	ch = strings.TrimSuffix(ch, ":owner")
	return strings.TrimSuffix(strings.TrimPrefix(ch, "sse:{"), "}")
}

// The messages of a client's channels, as lua/lib.lua writes them. The
// first byte says what happened.
const (
	msgEvent    = 'e' // "e<seq> <final 0|1> <name>\n<data>": an event was logged
	msgAttached = 'a' // "a<gen>": a stream attached; older ones end
	msgRemoved  = 'r' // the client is gone: its streams end, its run stops
	msgDropped  = 'd' // its stream ends, as a dropped connection would
)

// gapReason is the reason of a gap code of lua/lib.lua's resume_gap, or ""
// for none.
func gapReason(code int64) string {
	switch code {
	case 1:
		return sse.ReasonUnknownClient
	case 2:
		return sse.ReasonNotKept
	case 3:
		return sse.ReasonAhead
	}
	return ""
}

// loggedEvent is an event read from a client's log or channel.
type loggedEvent struct {
	seq   uint64
	entry sse.Entry
	final bool
}

// parseEvent reads the rest of a msgEvent: "<seq> <final> <name>\n<data>".
func parseEvent(s string) (loggedEvent, bool) {
	num, rest, ok1 := strings.Cut(s, " ")
	flag, rest, ok2 := strings.Cut(rest, " ")
	name, data, ok3 := strings.Cut(rest, "\n")
	seq, err := strconv.ParseUint(num, 10, 64)
	if !ok1 || !ok2 || !ok3 || err != nil {
		return loggedEvent{}, false
	}
	return loggedEvent{seq: seq, entry: sse.Entry{Name: name, Data: data}, final: flag == "1"}, true
}

// parseEntries reads XRANGE's answer on a client's log:
// [[id, [field, value, ...]], ...], where id is "0-<seq>" and the fields
// are n (the name) and d (the data).
func parseEntries(v any) ([]loggedEvent, error) {
	list, _ := v.([]any)
	events := make([]loggedEvent, 0, len(list))
	for _, item := range list {
		pair, _ := item.([]any)
		if len(pair) != 2 {
			return nil, fmt.Errorf("sseredis: unexpected log entry %v", item)
		}
		id, _ := pair[0].(string)
		seq, err := strconv.ParseUint(strings.TrimPrefix(id, "0-"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("sseredis: unexpected log entry id %q", id)
		}
		var e sse.Entry
		fields, _ := pair[1].([]any)
		for i := 0; i+1 < len(fields); i += 2 {
			k, _ := fields[i].(string)
			v, _ := fields[i+1].(string)
			switch k {
			case "n":
				e.Name = v
			case "d":
				e.Data = v
			}
		}
		events = append(events, loggedEvent{seq: seq, entry: e})
	}
	return events, nil
}
