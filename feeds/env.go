package feeds

// The expression environment exists twice, with the same layout:
//
//   - checkEnv (offerVars, sellerVars, ratingVars) carries the real Go types.
//     Filters and custom template fields are type-checked and compiled
//     against it, so expr specialises its opcodes for strings, ints,
//     floats and times and rejects ill-typed programs at Compile.
//   - slotEnv (offerSlots, sellerSlots, ratingSlots) has the same fields
//     in the same order with every leaf declared as any. Programs run
//     against it. expr reaches struct fields through reflect by index, and
//     reflect must copy (allocate) a non-pointer leaf reached through a
//     pointer; an interface leaf is returned as is. Each leaf is boxed once
//     per View by the Evaluator and then read by every program without
//     allocating. The dynamic type in each slot is exactly the static type
//     of the checkEnv field, so a program sees the same values it would see
//     on checkEnv (TestEnvLayout pins the layout).
//
// The one deliberate difference from records.Offer is attributes: it is
// map[string]any, so a missing key reads as nil (docs/contract.md,
// Filters), not "".
//
// Both environments, the usage bits and the slots with their load
// functions are generated into model_gen.go by internal/records/modelgen
// from the one description of the data model (the .avsc files and
// modelgen/model.go); this file holds what is not per field.

// allFields marks every leaf of one record in a usage.
const allFields = ^uint32(0)

// optionalString is what expr's dereference makes of a *string: the string, or
// nil. Programs dereference pointer fields before using them, so storing
// the result saves a copy (an allocation) per run.
func optionalString(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}
