package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/gsim-dev/gsim/internal/lazyre"
)

// doc is a report as plain blocks, rendered into summary.md and report.html
// from the same data so the two always say the same thing.
type doc struct {
	Title  string
	Blocks []block
}

// block is one heading, paragraph, list, table or figure. Text may use
// **bold** and `code`, the only markdown the HTML renderer converts.
type block struct {
	Heading string
	Para    string
	List    []string
	Table   *table
	Figure  *figure
	// Grid lays figures out GridCols to a row (small multiples).
	Grid     []figure
	GridCols int
}

func (d *doc) h(s string) { d.Blocks = append(d.Blocks, block{Heading: s}) }
func (d *doc) p(format string, a ...any) {
	d.Blocks = append(d.Blocks, block{Para: fmt.Sprintf(format, a...)})
}
func (d *doc) list(items []string) { d.Blocks = append(d.Blocks, block{List: items}) }
func (d *doc) table(t table)       { d.Blocks = append(d.Blocks, block{Table: &t}) }
func (d *doc) fig(f figure)        { d.Blocks = append(d.Blocks, block{Figure: &f}) }
func (d *doc) grid(fs []figure, cols int) {
	d.Blocks = append(d.Blocks, block{Grid: fs, GridCols: max(cols, 1)})
}

func (d *doc) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n", d.Title)
	for _, bl := range d.Blocks {
		b.WriteString("\n")
		switch {
		case bl.Heading != "":
			fmt.Fprintf(&b, "## %s\n", bl.Heading)
		case bl.Para != "":
			b.WriteString(bl.Para + "\n")
		case bl.List != nil:
			for _, it := range bl.List {
				b.WriteString("- " + it + "\n")
			}
		case bl.Table != nil:
			b.WriteString(bl.Table.markdown())
		case bl.Figure != nil:
			fmt.Fprintf(&b, "![%s](%s)\n", bl.Figure.Title, bl.Figure.File)
		case bl.Grid != nil:
			b.WriteString("|" + strings.Repeat(" |", bl.GridCols) + "\n|" + strings.Repeat("---|", bl.GridCols) + "\n")
			for i := 0; i < len(bl.Grid); i += bl.GridCols {
				b.WriteString("|")
				for j := i; j < i+bl.GridCols; j++ {
					if j < len(bl.Grid) {
						fmt.Fprintf(&b, " ![%s](%s) |", bl.Grid[j].Title, bl.Grid[j].File)
					} else {
						b.WriteString(" |")
					}
				}
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}

var (
	boldRe = lazyre.New(`\*\*([^*]+)\*\*`)
	codeRe = lazyre.New("`([^`]+)`")
	// linkRe converts [text](url) for relative links (../x, ./x) only:
	// reports link to their neighbours, never out of the store.
	linkRe = lazyre.New(`\[([^\]]+)\]\((\.\.?/[^)\s]+)\)`)
)

func inline(s string) template.HTML {
	e := template.HTMLEscapeString(s)
	e = boldRe.ReplaceAllString(e, "<strong>$1</strong>")
	e = codeRe.ReplaceAllString(e, "<code>$1</code>")
	e = linkRe.ReplaceAllString(e, `<a href="$2">$1</a>`)
	return template.HTML(e)
}

type htmlBlock struct {
	Heading string
	Para    template.HTML
	List    []template.HTML
	Head    []string
	Num     []bool
	Rows    [][]template.HTML
	IsTable bool
	Img     template.URL
	Alt     string
	Caption string
	Grid    [][]htmlFig
}

type htmlFig struct {
	Img template.URL
	Alt string
}

const css = `body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.3em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em;display:block;overflow-x:auto;max-width:100%}th,td{border:1px solid #ccc;padding:.25em .6em}th{background:#f4f4f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}code{background:#f4f4f4;padding:0 .2em;border-radius:3px;font-size:.9em;word-break:break-all}
figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
table.grid td{border:none;padding:.2em;width:50%}table.grid{display:table;width:100%}`

// pageTmpl is parsed when a report is first written, not when gsim starts.
var pageTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("page").Parse(pageHTML))
})

const pageHTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}}</title><style>{{.CSS}}</style></head>
<body><h1>{{.Title}}</h1>
{{range .Blocks}}{{if .Heading}}<h2>{{.Heading}}</h2>
{{else if .Para}}<p>{{.Para}}</p>
{{else if .List}}<ul>{{range .List}}<li>{{.}}</li>{{end}}</ul>
{{else if .IsTable}}{{$num := .Num}}<table><thead><tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr></thead><tbody>
{{range .Rows}}<tr>{{range $i, $c := .}}<td{{if index $num $i}} class="n"{{end}}>{{$c}}</td>{{end}}</tr>
{{end}}</tbody></table>
{{else if .Img}}<figure><img src="{{.Img}}" alt="{{.Alt}}"><figcaption>{{.Caption}}</figcaption></figure>
{{else if .Grid}}<table class="grid"><tbody>{{range .Grid}}<tr>{{range .}}<td><img src="{{.Img}}" alt="{{.Alt}}" title="{{.Alt}}"></td>{{end}}</tr>
{{end}}</tbody></table>
{{end}}{{end}}</body></html>
`

// html renders a self-contained page: inline CSS, figures as base64 data
// URIs read from outDir, no script and no external request.
func (d *doc) html(outDir string) ([]byte, error) {
	var blocks []htmlBlock
	for _, bl := range d.Blocks {
		var hb htmlBlock
		switch {
		case bl.Heading != "":
			hb.Heading = bl.Heading
		case bl.Para != "":
			hb.Para = inline(bl.Para)
		case bl.List != nil:
			for _, it := range bl.List {
				hb.List = append(hb.List, inline(it))
			}
		case bl.Table != nil:
			hb.IsTable = true
			hb.Head = bl.Table.Head
			for i := range hb.Head {
				hb.Num = append(hb.Num, bl.Table.numeric(i))
			}
			for _, r := range bl.Table.Rows {
				cells := make([]template.HTML, len(r))
				for i, c := range r {
					cells[i] = inline(c)
				}
				hb.Rows = append(hb.Rows, cells)
			}
		case bl.Grid != nil:
			for i := 0; i < len(bl.Grid); i += bl.GridCols {
				var row []htmlFig
				for _, f := range bl.Grid[i:min(i+bl.GridCols, len(bl.Grid))] {
					png, err := os.ReadFile(filepath.Join(outDir, f.File))
					if err != nil {
						return nil, fmt.Errorf("report.html: %w", err)
					}
					row = append(row, htmlFig{Img: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png)), Alt: f.Title})
				}
				hb.Grid = append(hb.Grid, row)
			}
		case bl.Figure != nil:
			png, err := os.ReadFile(filepath.Join(outDir, bl.Figure.File))
			if err != nil {
				return nil, fmt.Errorf("report.html: %w", err)
			}
			hb.Img = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
			hb.Alt = bl.Figure.Title
			hb.Caption = bl.Figure.Title + ": " + bl.Figure.Caption
		}
		blocks = append(blocks, hb)
	}
	var buf bytes.Buffer
	err := pageTmpl().Execute(&buf, struct {
		Title  string
		CSS    template.CSS
		Blocks []htmlBlock
	}{d.Title, template.CSS(css), blocks})
	if err != nil {
		return nil, fmt.Errorf("report.html: %w", err)
	}
	return buf.Bytes(), nil
}

// flatten turns nested run_meta maps into sorted dotted keys for the
// provenance table.
func flatten(prefix string, v any, out map[string]string) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, x, out)
		}
	case nil:
		if prefix != "" {
			out[prefix] = "null"
		}
	default:
		out[prefix] = fmt.Sprint(t)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
