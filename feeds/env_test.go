package feeds

import (
	"reflect"
	"testing"

	"github.com/feedmill/feedmill/internal/records"
)

// TestEnvLayout pins that records, the checked environment and the slot
// environment agree field by field: programs compiled against the checked
// types run against the slots by field index.
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
			n := tc.record.NumField()
			if tc.vars.NumField() != n || tc.slots.NumField() != n {
				t.Fatalf("field counts: %s %d, %s %d, %s %d", tc.record, n, tc.vars, tc.vars.NumField(), tc.slots, tc.slots.NumField())
			}
			if n > 32 {
				t.Fatalf("%d fields do not fit the uint32 usage mask", n)
			}
			for i := range n {
				rf, vf, sf := tc.record.Field(i), tc.vars.Field(i), tc.slots.Field(i)
				if rf.Tag.Get("expr") != vf.Tag.Get("expr") || rf.Tag.Get("expr") != sf.Tag.Get("expr") {
					t.Errorf("field %d: expr tags %q %q %q", i, rf.Tag.Get("expr"), vf.Tag.Get("expr"), sf.Tag.Get("expr"))
				}
				if tc.record == reflect.TypeFor[checkEnv]() {
					continue
				}
				want := rf.Type
				if rf.Name == "Attributes" {
					want = reflect.TypeFor[map[string]any]()
				}
				if vf.Type != want {
					t.Errorf("field %s: checked type %s, want %s", rf.Name, vf.Type, want)
				}
				if sf.Type.Kind() != reflect.Interface {
					t.Errorf("field %s: slot type %s, want any", rf.Name, sf.Type)
				}
			}
		})
	}
}
