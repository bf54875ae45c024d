package feeds

import (
	"reflect"
	"testing"

	"github.com/feedmill/feedmill/internal/records"
)

// TestEnvLayout pins that the checked environment and the slot environment
// agree field by field (programs compiled against the checked types run
// against the slots by field index), and that every leaf is a field of the
// record with the record's type.
func TestEnvLayout(t *testing.T) {
	tests := []struct {
		record, vars, slots reflect.Type
	}{
		{reflect.TypeFor[records.Offer](), reflect.TypeFor[offerVars](), reflect.TypeFor[offerSlots]()},
		{reflect.TypeFor[records.Seller](), reflect.TypeFor[sellerVars](), reflect.TypeFor[sellerSlots]()},
		{reflect.TypeFor[records.Rating](), reflect.TypeFor[ratingVars](), reflect.TypeFor[ratingSlots]()},
		{reflect.TypeFor[checkEnv](), reflect.TypeFor[slotEnv](), reflect.TypeFor[slotEnv]()},
	}
	for _, tc := range tests {
		t.Run(tc.record.Name(), func(t *testing.T) {
			n := tc.vars.NumField()
			if tc.slots.NumField() != n {
				t.Fatalf("field counts: %s %d, %s %d", tc.vars, n, tc.slots, tc.slots.NumField())
			}
			if n > 32 {
				t.Fatalf("%d fields do not fit the uint32 usage mask", n)
			}
			byTag := map[string]reflect.StructField{}
			visible := 0
			for i := range tc.record.NumField() {
				f := tc.record.Field(i)
				if tag := f.Tag.Get("expr"); tag != "-" {
					byTag[tag] = f
					visible++
				}
			}
			if visible != n {
				t.Fatalf("%s has %d expr fields, the environment %d", tc.record, visible, n)
			}
			for i := range n {
				vf, sf := tc.vars.Field(i), tc.slots.Field(i)
				tag := vf.Tag.Get("expr")
				if sf.Tag.Get("expr") != tag || vf.Name != sf.Name {
					t.Errorf("field %d: %s %q, slot %s %q", i, vf.Name, tag, sf.Name, sf.Tag.Get("expr"))
				}
				if tc.record == reflect.TypeFor[checkEnv]() {
					continue
				}
				rf, ok := byTag[tag]
				if !ok {
					t.Errorf("field %s: not in %s", tag, tc.record)
					continue
				}
				want := rf.Type
				if want.Kind() == reflect.Map {
					want = reflect.TypeFor[map[string]any]()
				}
				if vf.Type != want || vf.Name != rf.Name {
					t.Errorf("field %s: checked %s %s, want %s %s", tag, vf.Name, vf.Type, rf.Name, want)
				}
				if sf.Type.Kind() != reflect.Interface {
					t.Errorf("field %s: slot type %s, want any", tag, sf.Type)
				}
			}
		})
	}
}
