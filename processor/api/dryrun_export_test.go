package api

import "reflect"

// DryRunDefinitionTypes returns the JSON forms of config.Feed and
// config.Group the dry run decodes.
func DryRunDefinitionTypes() (feed, group reflect.Type) {
	return reflect.TypeFor[feedDefinitionJSON](), reflect.TypeFor[groupDefinitionJSON]()
}
