package servebench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// sseReader splits a text/event-stream body into events' data. It keeps to
// the parts of the SSE format that OpenAI-compatible servers use: "data:"
// lines (several in one event are joined with \n), blank lines ending an
// event, and comment (":") and other field lines, which are skipped.
type sseReader struct {
	br   *bufio.Reader
	data []byte
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{br: bufio.NewReaderSize(r, 4<<10)}
}

// next returns the next event's data; the slice is valid until the next call.
// It returns io.EOF at the end of the body; an event cut off by the end of
// the body is returned first if it has data.
func (s *sseReader) next() ([]byte, error) {
	s.data = s.data[:0]
	have := false
	for {
		line, err := s.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A data line longer than the buffer: gather it whole.
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = s.br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) > 0 {
			l := bytes.TrimRight(line, "\r\n")
			switch {
			case len(l) == 0:
				if have {
					return s.data, nil
				}
			case bytes.HasPrefix(l, []byte("data:")):
				v := l[5:]
				if len(v) > 0 && v[0] == ' ' {
					v = v[1:]
				}
				if have {
					s.data = append(s.data, '\n')
				}
				s.data = append(s.data, v...)
				have = true
			}
		}
		if err != nil {
			if have && errors.Is(err, io.EOF) {
				return s.data, nil
			}
			return nil, err
		}
	}
}

// chunk is the part of a streamed completion or chat completion chunk that
// the bench reads.
type chunk struct {
	Choices []struct {
		Text  *string `json:"text"`
		Delta *struct {
			Content          *string `json:"content"`
			ReasoningContent *string `json:"reasoning_content"`
			Reasoning        *string `json:"reasoning"`
		} `json:"delta"`
		FinishReason *string         `json:"finish_reason"`
		Logprobs     json.RawMessage `json:"logprobs"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// logprobs of a chunk: completions carry a tokens list, chat a content list;
// either's length is the number of tokens the chunk carries.
type logprobs struct {
	Tokens  []json.RawMessage `json:"tokens"`
	Content []json.RawMessage `json:"content"`
}

// parsed is what one event says.
type parsed struct {
	text         bool  // carries generated text
	tokens       int64 // tokens it carries by its logprobs; 0 when they are absent
	finish       string
	usage        bool
	prompt, comp int64
	errMsg       string // an error event's message
}

func parseChunk(data []byte) (parsed, error) {
	var c chunk
	var p parsed
	if err := json.Unmarshal(data, &c); err != nil {
		return p, err
	}
	if len(c.Error) > 0 && string(c.Error) != "null" {
		p.errMsg = errorText(c.Error)
		return p, nil
	}
	for _, ch := range c.Choices {
		if ch.Text != nil && *ch.Text != "" {
			p.text = true
		}
		if d := ch.Delta; d != nil {
			for _, s := range []*string{d.Content, d.ReasoningContent, d.Reasoning} {
				if s != nil && *s != "" {
					p.text = true
				}
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			p.finish = *ch.FinishReason
		}
		if len(ch.Logprobs) > 0 && string(ch.Logprobs) != "null" {
			var lp logprobs
			if err := json.Unmarshal(ch.Logprobs, &lp); err == nil {
				p.tokens += int64(len(lp.Tokens) + len(lp.Content))
			}
		}
	}
	if c.Usage != nil {
		p.usage, p.prompt, p.comp = true, c.Usage.PromptTokens, c.Usage.CompletionTokens
	}
	return p, nil
}

// errorText renders an OpenAI-style error object ({"message": ...}) or any
// other JSON as one line.
func errorText(raw json.RawMessage) string {
	var e struct {
		Message string `json:"message"`
		Type    string `json:"type"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Message != "" {
		if e.Type != "" {
			return e.Type + ": " + e.Message
		}
		return e.Message
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
