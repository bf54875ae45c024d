package feeds

import "github.com/feedmill/feedmill/config"

func partnerX() config.Template {
	return config.Template{ID: "partner-x", Root: "products", Item: "product", Fields: []config.TemplateField{
		{Name: "id", Value: "offer.id"},
		{Name: "name", Value: "offer.title"},
		{Name: "price", Value: "offer.price"},
		{Name: "price_minor", Value: "offer.price_minor"},
		{Name: "seller", Value: "seller?.name"},
		{Name: "rating", Value: "rating?.average"},
		{Name: "brand", Value: "offer.brand"},
		{Name: "colour", Value: `offer.attributes["colour"]`},
		{Name: "in_stock", Value: `offer.stock > 0`},
		{Name: "images", Value: `len(offer.images)`},
		{Name: "category", Value: `replace(offer.category, "/", " > ")`},
	}}
}
