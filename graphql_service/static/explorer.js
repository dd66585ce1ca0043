// Renders GraphiQL (static/graphiql/: the globals React, ReactDOM and GraphiQL) into #graphiql.
// The page gives the endpoint's URL and the initial query in #graphiql-config.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("graphiql-config").textContent);
  var fetcher = GraphiQL.createFetcher({ url: config.url });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      defaultQuery: config.defaultQuery,
    })
  );
})();
