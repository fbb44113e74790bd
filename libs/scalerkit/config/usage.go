package config

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/kelseyhightower/envconfig"
)

// usageFormat prints one row per variable: name, type, default, meaning.
const usageFormat = `{{range .}}{{usage_key .}}	{{usage_type .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`

// Usage writes a table of the variables of each spec to w.
func Usage(w io.Writer, specs ...any) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tTYPE\tDEFAULT\tMEANING")
	for _, spec := range specs {
		if err := envconfig.Usagef("", spec, tw, usageFormat); err != nil {
			return err
		}
	}
	return tw.Flush()
}
